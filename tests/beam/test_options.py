import sys

import pytest

from tfsynth.beam.options import BeamConfig, check_runner, require_beam
from tfsynth.errors import ConfigError


def test_flags_split_like_a_shell():
    cfg = BeamConfig("--runner=DirectRunner --job_name='a b'")
    assert cfg.flags() == ["--runner=DirectRunner", "--job_name=a b"]
    assert BeamConfig(["--direct_num_workers=2"]).flags() == ["--direct_num_workers=2"]


def test_pipeline_options_carry_the_flags():
    from apache_beam.options.pipeline_options import DirectOptions

    opts = BeamConfig("--direct_num_workers=2 --direct_running_mode=multi_threading")
    direct = opts.pipeline_options().view_as(DirectOptions)
    assert (direct.direct_num_workers, direct.direct_running_mode) == (2, "multi_threading")


@pytest.mark.parametrize(
    "options, message",
    [
        ("--job_name='open", "No closing quotation"),
        ("--direct_num_workrs=2", "Beam does not know ['--direct_num_workrs=2']"),
        ("direct_num_workers=2", "Beam does not know ['direct_num_workers=2']"),
        ("--direct_num_workers=two", "invalid int value: 'two'"),
        ("--direct_running_mode=fast", "invalid choice: 'fast'"),
        ("--runner=NoSuchRunner", "runner 'NoSuchRunner': Unexpected pipeline runner"),
    ],
)
def test_bad_options_are_one_line(options, message, capsys):
    with pytest.raises(ConfigError) as e:
        BeamConfig(options).pipeline_options()
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith("--beam-options: ")
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # Beam's usage text and warnings are not shown


def test_runner_names(monkeypatch):
    check_runner("beam", "--direct_num_workers=2")
    with pytest.raises(ConfigError, match="--runner: expected local or beam, got 'Beam'"):
        check_runner("Beam", None)
    with pytest.raises(ConfigError, match="--beam-options: needs --runner beam"):
        check_runner("local", "--direct_num_workers=2")


def test_missing_beam_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam -> ImportError
    with pytest.raises(ConfigError, match=r'needs Apache Beam: pip install "tfsynth\[beam\]"'):
        require_beam()
