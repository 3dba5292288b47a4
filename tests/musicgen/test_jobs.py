"""Batch render jobs (`render musicgen --batch`): a key or column the reader does not know is refused, never
dropped, and a seed is a whole number, never rounded."""

from __future__ import annotations

import pytest

from sae.errors import UserError
from training.musicgen.jobs import read_jobs


def _jobs(tmp_path, name: str, text: str):
    (tmp_path / name).write_text(text)
    return read_jobs(tmp_path / name, tmp_path / "outs", seed=0, duration=10.0, sets=[])


def test_every_known_key_is_read(tmp_path):
    yaml_jobs = _jobs(tmp_path, "j.yaml", "- {prompt: guitar, name: g, seed: 7.0, duration: 2, set: 'guitar=off'}\n")
    csv_jobs = _jobs(tmp_path, "j.csv", "prompt,name,seed,duration,set\nguitar,g,7,2,guitar=off\n")
    for job in (yaml_jobs[0], csv_jobs[0]):
        assert (job.prompt, job.out.name, job.seed, job.duration, job.sets) == (
            "guitar",
            "g.wav",
            7,
            2.0,
            ["guitar=off"],
        )


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("j.yaml", "- {prompt: guitar, durration: 1}\n", "job 1: unknown key 'durration'; expected prompt, name"),
        ("j.yaml", "- {prompt: guitar, sets: 'guitar=off'}\n", "unknown key 'sets'"),
        ("j.csv", "prompt,sets\nguitar,guitar=off\n", "unknown column 'sets'"),
        ("j.csv", "prompt,seed\nguitar,1,2\n", "job 1: more cells than the header has columns"),
        ("j.yaml", "- {prompt: guitar, seed: 1.5}\n", "seed must be an integer"),
        ("j.csv", "prompt,seed\nguitar,1.5\n", "seed must be an integer"),
        ("j.yaml", "- {prompt: guitar, seed: true}\n", "seed must be an integer"),
        ("j.yaml", "- {prompt: guitar, seed: 99999999999999999999999}\n", "seed 99999999999999999999999: expected"),
        ("j.csv", "prompt,seed\nguitar,-1\n", "seed -1: expected an integer in [0, 2**63)"),
        ("j.yaml", "- {prompt: [guitar, drums]}\n", "job 1: 'prompt' must be a text, not ['guitar', 'drums']"),
        ("j.yaml", "- {prompt: on}\n", "job 1: 'prompt' must be a text, not True"),  # hunt 78: rendered 'True'
        ("j.yaml", "- {prompt: guitar, duration: yes}\n", "duration a number of seconds"),  # was 1 s
        # hunt 155: int() and float() read other scripts' digits and underscores (1_000 was seed 1000)
        ("j.csv", "prompt,seed\nguitar,1_000\n", "seed must be an integer"),
        ("j.yaml", "- {prompt: guitar, seed: '١٢'}\n", "seed must be an integer"),
        ("j.csv", "prompt,seed\nguitar,１２.０\n", "seed must be an integer"),
        ("j.csv", "prompt,duration\nguitar,1_0\n", "duration a number of seconds"),
        ("j.yaml", "- {prompt: guitar, duration: '٣'}\n", "duration a number of seconds"),
        ("j.yaml", "- {prompt: guitar, duration: 1" + "0" * 400 + "}\n", "duration a number of seconds"),  # hunt 157
        ("j.yaml", "- {prompt: guitar, seed: 1_000.0}\n", "1_000.0 reads as 1000 in YAML"),
        ("j.yaml", "- {prompt: guitar, duration: 1:30.0}\n", "1:30.0 reads as 90 in YAML"),
        # hunt 97: settings beside `jobs:` and a column given twice were dropped (the last cell won)
        ("j.yaml", "seed: 7\njobs: [guitar]\n", "unknown key 'seed' beside 'jobs'"),
        ("j.csv", "prompt,prompt\nguitar solo,drum loop\n", "column 'prompt' appears twice in the header"),
    ],
)
def test_an_unknown_key_or_a_fractional_seed_is_one_line(tmp_path, name, text, needle):
    with pytest.raises(UserError) as err:
        _jobs(tmp_path, name, text)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_name_made_from_a_prompt_with_a_dot_is_a_wav(tmp_path):
    """Hunt 78: "80s synth-pop vol. 2" named its file `0000_80s_synth-pop_vol._2`, whose suffix '._2' was refused."""
    jobs = _jobs(tmp_path, "j.yaml", "- 80s synth-pop vol. 2\n- lofi beat 1.5x slower\n")
    assert [j.out.name for j in jobs] == ["0000_80s_synth-pop_vol._2.wav", "0001_lofi_beat_1.5x_slower.wav"]


def test_a_batch_that_is_not_text_is_one_line(tmp_path):
    """An audio file given as --batch was a UnicodeDecodeError traceback."""
    (tmp_path / "jobs.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\xff\xfe\xac\x9d")
    with pytest.raises(UserError, match=r"jobs\.wav: not a text file; expected a YAML list or a CSV of jobs"):
        read_jobs(tmp_path / "jobs.wav", tmp_path / "outs", seed=0, duration=10.0, sets=[])


def test_a_spreadsheets_csv_with_a_byte_order_mark_is_read(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM: it was refused with "expected a 'prompt' column", which it has."""
    (tmp_path / "j.csv").write_bytes("\ufeffprompt,seed\r\nguitar,3\r\n".encode())
    jobs = read_jobs(tmp_path / "j.csv", tmp_path / "outs", seed=0, duration=10.0, sets=[])
    assert [(j.prompt, j.seed) for j in jobs] == [("guitar", 3)]
    with pytest.raises(UserError, match="the header reads 'prompt;seed'"):  # another separator: said, not guessed
        _jobs(tmp_path, "s.csv", "prompt;seed\nguitar;3\n")


def test_a_batch_csv_with_a_quote_left_open_is_refused(tmp_path):
    """The open quote took every job after it into one prompt ('calm guitar,3\\ndrums,4' played as one job)."""
    with pytest.raises(UserError, match=r"j\.csv: not a readable CSV \(a quote opened on line 2 is never closed\)$"):
        _jobs(tmp_path, "j.csv", 'prompt,seed\n"calm guitar,3\ndrums,4\n')


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- {prompt: guitar, name: [a]}\n", "job 1: 'name' must be a file name, not ['a']"),
        ("- {prompt: guitar, name: true}\n", "job 1: 'name' must be a file name, not True"),
        ("- {prompt: guitar, name: '.'}\n", "job 1: name '.': expected a file name that does not start with '.'"),
        ("- {prompt: guitar, name: .hidden}\n", "name '.hidden': expected a file name that does not start"),
    ],
    ids=["a-list", "a-boolean", "a-dot", "hidden"],
)
def test_a_name_that_is_no_file_name_is_one_line(tmp_path, text, needle):
    """`name: [a]` rendered to "['a'].wav", `name: yes` to "True.wav", and `name: .` to the hidden "..wav"."""
    with pytest.raises(UserError) as err:
        _jobs(tmp_path, "j.yaml", text)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_names_that_differ_only_in_case_are_one_file(tmp_path):
    """Hunt 197: jobs named `A` and `a` wrote A.wav and a.wav here, one file on macOS and Windows: the second
    replaced the first while render.json listed both."""
    with pytest.raises(UserError, match=r"output name 'A\.wav' used by several jobs \(case aside\)"):
        _jobs(tmp_path, "j.yaml", "- {prompt: guitar, name: A}\n- {prompt: piano, name: a}\n")
    assert len(_jobs(tmp_path, "k.yaml", "- {prompt: guitar, name: A}\n- {prompt: piano, name: b}\n")) == 2
