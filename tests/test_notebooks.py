"""The notebooks: Colab-ready form (fast), and a smoke execution of each (slow).

Execution uses nbclient with a kernel spec written for the current
interpreter (so the kernel imports the tfsynth under test, whatever kernels
the machine has installed) and TFSYNTH_NOTEBOOK_SMOKE=1, which every
notebook reads in its parameter cell to shrink sizes to seconds.
"""

from pathlib import Path

import nbformat  # the `test` extra installs nbformat, nbclient and ipykernel
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_quickstart", "02_train_gan_vae", "03_augment_fuse_validate", "04_export_and_serve",
         "05_semi_supervised"]  # fmt: skip
BADGE = "https://colab.research.google.com/github/tfsynth/tfsynth/blob/main/notebooks/{}.ipynb"
INSTALL = '%pip install -q "tfsynth @ git+https://github.com/tfsynth/tfsynth"'
SMOKE_FLAG = 'SMOKE = os.environ.get("TFSYNTH_NOTEBOOK_SMOKE") == "1"'

# What each executed notebook must show: at least this many PNG images, and
# these strings in its text output.
EXPECTED = {
    "01_quickstart": (4, ["tstr_accuracy", "fused_accuracy", "wall_seconds", "| TSTR |"]),
    "02_train_gan_vae": (4, ['"model": "cgan"', '"model": "cvae"', '"num_examples": 40']),
    "03_augment_fuse_validate": (
        4,
        ["policy: fill:constant", '"source_totals"', "real_only_accuracy", "| D' (fused) |"],
    ),
    "04_export_and_serve": (
        2,
        ["serving_default", "sample", "(20, 28, 28, 1)", "same seed, same images: True"],
    ),
    "05_semi_supervised": (
        2,
        [
            "unlabelled",
            '"pseudo_label_accuracy"',
            "source=pseudo, source_index=",
            "| D' (+ pseudo, ",
            "features: ssl:ssl",
        ],
    ),  # fmt: skip
}


def _read(name):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_notebooks_are_the_documented_four():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == NAMES
    readme = (NOTEBOOK_DIR / "README.md").read_text()
    assert all(f"{name}.ipynb" in readme for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_colab_ready_and_stripped(name):
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and BADGE.format(name) in first.source
    code = _code(nb)
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    install = code[0].source
    # The install only runs where tfsynth is missing (Colab), never over a checkout.
    assert "except ImportError:" in install and INSTALL in install
    assert install.index("import tfsynth") < install.index("except ImportError:")
    # The first code cell after the install holds the parameters, smoke switch first.
    assert SMOKE_FLAG in code[1].source


def _kernel_manager(kernel_root):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    return AsyncKernelManager(
        kernel_name="tfsynth-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_root)]),
    )


@pytest.fixture(scope="module")
def kernel_root(tmp_path_factory):
    """A kernel spec that runs ipykernel with this interpreter (sys.executable)."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(root / "tfsynth-test", overrides={"display_name": "tfsynth tests"})
    return root


def _text(outputs):
    parts = []
    for o in outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            parts.append(o.data.get("text/markdown", "") + o.data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_with_smoke_settings(name, tmp_path, monkeypatch, kernel_root):
    from nbclient import NotebookClient

    monkeypatch.setenv("TFSYNTH_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TFSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # Smoke mode writes into tempfile.mkdtemp(); keep that inside tmp_path.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    nb = _read(name)
    client = NotebookClient(
        nb,
        km=_kernel_manager(kernel_root),
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    code = _code(nb)
    # tfsynth is importable here, so the install cell must not have run pip.
    assert code[0].outputs == []
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    min_images, texts = EXPECTED[name]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= min_images
    text = _text(outputs)
    for expected in texts:
        assert expected in text, expected
    assert "Traceback" not in text
    # Smoke mode writes into a temporary directory, never next to the notebook.
    assert sorted(p.name for p in tmp_path.iterdir()) in (["tmp"], ["cache", "tmp"])
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("tfsynth-nb")]
