# musicsae tasks. `just demo` and `just test` set everything up first (idempotent).

set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python3")
venv := ".venv"
bin := venv + "/bin"
# Debian packages the tests, the concept data and the live engine use (python3-venv: Debian's python3 has no venv
# without it).
apt_packages := "python3-venv patch fluidsynth libfluidsynth3 timgm6mb-soundfont fluid-soundfont-gm csound-soundfont opl3-soundfont espeak-ng jackd2 libportaudio2 liblo-tools puredata-core ffmpeg sox chromium g++"
# apt-get install without questions: `env` carries the settings through sudo, whose env_reset drops them (a plain
# `VAR=x sudo apt-get` left debconf asking jackd2's realtime question at a prompt nobody saw, output to /dev/null)
apt_install := "env DEBIAN_FRONTEND=noninteractive JACK_NO_AUDIO_RESERVATION=1 apt-get install -y -qq --no-install-recommends"

# list the tasks
default:
    @just --list

# system packages (Debian/Ubuntu; needs root or sudo)
setup-system:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=$(for p in {{apt_packages}}; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
    [ -z "$missing" ] && exit 0
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing system packages: $missing"
    $sudo apt-get update -qq
    $sudo {{apt_install}} $missing > /dev/null

# .venv with torch, musicsae (editable) and the patched third-party packages, at the versions in poetry.lock
setup: setup-system
    #!/usr/bin/env bash
    set -euo pipefail
    stamp={{venv}}/.musicsae-setup
    want=$(cat pyproject.toml poetry.lock tools/lockfile.py patches/*.diff patches/install.py | sha256sum | cut -c1-16)
    # done when nothing it installs from changed and the venv still holds it all (a package reinstalled since, say
    # audiocraft from PyPI without its patch, makes it run again)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && {{bin}}/python tools/lockfile.py check > /dev/null 2>&1; then exit 0; fi
    {{python}} -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "musicsae needs Python 3.11, not " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
    [ -x {{bin}}/python ] || {{python}} -m venv {{venv}}
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    start=$(date +%s)
    # torch first: a CPU machine may carry a local wheel; a GPU box gets the CUDA build from PyPI
    # (pick another build with TORCH_INDEX_URL, e.g. the PyTorch CPU or cu12x index).
    {{bin}}/pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
    # everything else at exactly the versions poetry.lock records (`just lock` is the one way to change them)
    {{bin}}/python tools/lockfile.py constraints > {{venv}}/lock-constraints.txt
    {{bin}}/pip install --quiet -c {{venv}}/lock-constraints.txt -e ".[dev]"
    {{bin}}/python patches/install.py
    {{bin}}/python tools/lockfile.py check
    echo "$want" > "$stamp"
    echo "setup done in $(( $(date +%s) - start )) s; venv $(du -sh {{venv}} | cut -f1)"

# (tools/run_tests.sh: the rest in parallel, then the live-timing ones in tests/realtime alone)
# lint, then every test, the slow end-to-end ones included (what CI runs)
test *ARGS: setup lint nn-runtime
    tools/run_tests.sh {{ARGS}}

# the quick loop while developing: the tests without the slow end-to-end ones, no lint
test-fast *ARGS: setup
    tools/run_tests.sh -m "not slow" {{ARGS}}

# The libtorch nn~'s released builds bundle (2.5.1, from the torch wheel on PyPI) and tests/nn/nnload.cpp built
# against it (tests/nn/test_nn_runtime.py).
# nn~'s libtorch and a program that loads and runs a model the way nn~'s backend does
nn-runtime: setup
    #!/usr/bin/env bash
    set -euo pipefail
    dir=.cache/nn-runtime
    want=$(sha256sum tests/nn/nnload.cpp | cut -c1-16)
    if [ -x "$dir/nnload" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi
    mkdir -p "$dir/wheels"
    start=$(date +%s)
    # torch 2.5.1 from PyPI is a CUDA build; its CPU libraries only need the CUDA runtime and CUPTI stubs to load
    {{bin}}/pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux1_x86_64 \
        --platform manylinux2014_x86_64 -d "$dir/wheels" \
        torch==2.5.1 nvidia-cuda-runtime-cu12==12.4.127 nvidia-cuda-cupti-cu12==12.4.127
    {{bin}}/python - "$dir" <<'PY'
    import sys, zipfile
    from pathlib import Path
    out = Path(sys.argv[1])
    keep = ("torch/include/", "torch/lib/libtorch_cpu.so", "torch/lib/libc10.so", "torch/lib/libgomp",
            "nvidia/cuda_runtime/lib/libcudart.so", "nvidia/cuda_cupti/lib/libcupti.so")
    for wheel in sorted((out / "wheels").glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(out / "libtorch", [n for n in z.namelist() if n.startswith(keep)])
    PY
    lt="$PWD/$dir/libtorch"
    g++ -O1 -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=0 -I"$lt/torch/include" -I"$lt/torch/include/torch/csrc/api/include" \
        tests/nn/nnload.cpp -o "$dir/nnload" -L"$lt/torch/lib" -Wl,--no-as-needed -ltorch_cpu -lc10 \
        -Wl,-rpath,"$lt/torch/lib:$lt/nvidia/cuda_runtime/lib:$lt/nvidia/cuda_cupti/lib"
    rm -rf "$dir/wheels"  # 0.9 GB; the headers and libraries are extracted
    echo "$want" > "$dir/stamp"
    echo "nn-runtime: libtorch 2.5.1 loader built in $(( $(date +%s) - start )) s: $dir/nnload"

# IRCAM's nn~ for Pure Data, built from a local nn_tilde checkout against the libtorch of `nn-runtime`, then
# tests/nn/test_nn_pd.py (nn~'s source is on no registry CI reaches, so `just test` deselects them)
# nn~ for Pd built from the nn_tilde checkout SRC, then the tests that run the export inside real Pd
nn-pd SRC: nn-runtime
    #!/usr/bin/env bash
    set -euo pipefail
    src="{{SRC}}/src"
    [ -f "$src/frontend/puredata/nn_tilde/nn_tilde.cpp" ] || { echo "nn-pd: $src is not an nn_tilde checkout"; exit 2; }
    missing=$(for p in puredata-dev nlohmann-json3-dev libcurl4-openssl-dev; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
    if [ -n "$missing" ]; then sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"; $sudo {{apt_install}} $missing > /dev/null; fi
    dir=.cache/nn-pd; lt="$PWD/.cache/nn-runtime/libtorch"
    mkdir -p "$dir"
    start=$(date +%s)
    g++ -std=c++20 -O2 -fPIC -shared -D_GLIBCXX_USE_CXX11_ABI=0 -DVERSION='"nn_tilde (local build)"' \
        -I"$lt/torch/include" -I"$lt/torch/include/torch/csrc/api/include" -I/usr/include/pd \
        "$src/frontend/puredata/nn_tilde/nn_tilde.cpp" "$src/backend/backend.cpp" "$src/backend/parsing_utils.cpp" \
        -o "$dir/nn~.pd_linux" -L"$lt/torch/lib" -Wl,--no-as-needed -ltorch_cpu -lc10 -lcurl -lgomp \
        -Wl,-rpath,"$lt/torch/lib:$lt/nvidia/cuda_runtime/lib:$lt/nvidia/cuda_cupti/lib"
    echo "nn-pd: built $dir/nn~.pd_linux in $(( $(date +%s) - start )) s"
    {{bin}}/pytest --nn-pd tests/nn/test_nn_pd.py

# the main job on the embedded demo model: data -> activations -> SAE -> concepts -> edits -> judge
demo OUT="demo_out": setup
    {{bin}}/musicsae demo --out {{OUT}}

# the MusicGen part on the demo MusicGen (training/assets/demo_musicgen): every layer, concepts, judged edits
demo-musicgen OUT="demo_mg": setup
    {{bin}}/musicsae demo --musicgen --out {{OUT}}

# ruff (lint and format), and poetry.lock agrees with pyproject.toml
lint: setup poetry
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .
    .cache/poetry/bin/poetry check --lock

# poetry in its own small venv (it only checks and writes the lock; `just setup` installs it with pip)
poetry:
    @[ -x .cache/poetry/bin/poetry ] || ({{python}} -m venv .cache/poetry && .cache/poetry/bin/pip install --quiet "poetry>=2.0,<3")

# The registry's per-version JSON pages are unreliable, so poetry resolves in a scratch copy through the simple
# index; the lock then records the packages as plain PyPI ones.
# re-resolve poetry.lock after a change to pyproject.toml, keeping what did not change (FRESH=1: all anew)
lock: poetry
    #!/usr/bin/env bash
    set -euo pipefail
    scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
    cp pyproject.toml README.md "$scratch"/
    [ -n "${FRESH:-}" ] || cp poetry.lock "$scratch"/
    printf '\n[[tool.poetry.source]]\nname = "simple-index"\nurl = "%s"\npriority = "primary"\n' \
        "${PIP_INDEX_URL:-$(.cache/poetry/bin/python -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')}" >> "$scratch/pyproject.toml"
    (cd "$scratch" && {{justfile_directory()}}/.cache/poetry/bin/poetry lock)
    .cache/poetry/bin/python - "$scratch/poetry.lock" <<'PY'
    import re, sys
    from pathlib import Path
    from poetry.factory import Factory
    text = Path(sys.argv[1]).read_text()
    text = re.sub(r"\n\[package\.source\]\ntype = \"legacy\"\nurl = \"[^\"]*\"\nreference = \"simple-index\"\n", "\n", text)
    digest = Factory().create_poetry(Path.cwd()).locker._get_content_hash()
    text = re.sub(r'content-hash = "[0-9a-f]+"', f'content-hash = "{digest}"', text)
    Path("poetry.lock").write_text(text)
    PY
    .cache/poetry/bin/poetry check --lock

# Each at its documented settings, the ones judging concept data on a folder made on the first run (runs/bench);
# one that fails is named at the end and the others still run (tests/bench/test_just_bench.py keeps this list whole).
# every benchmark in bench/: figures and ratios against a baseline measured in the same run, never pass/fail on time
bench: setup
    #!/usr/bin/env bash
    set -uo pipefail
    {{bin}}/pip install --quiet --no-deps "dictionary-learning==0.1.0"  # the SAE benchmark's baseline only
    failed=()
    run() { echo "== bench/$1 ${*:2}"; {{bin}}/python "bench/$1" "${@:2}" || failed+=("$1"); }
    skip() { echo "== bench/$1: not run here ($2)"; }
    run engine_blocks.py
    run gc_pause.py
    run jack_soak.py --minutes 2
    run judge_drift.py --data runs/bench/judge_data
    run layer_choice.py
    run learned_off.py --data runs/bench/learned_off_data
    run live_restart.py
    run musicgen_steer.py
    skip musicgen_text_use.py "needs a train_lm run: bench/musicgen_text_use.py --run RUN --data DATA"
    run nn_export.py
    run omp_wait.py
    run osc_packets.py
    run probe_chance.py
    run sae_train.py
    skip saelens_roundtrip.py "builds a 1.9 GB SAELens venv: run bench/saelens_roundtrip.py by hand"
    run split_steer.py
    [ ${#failed[@]} -eq 0 ] || { echo "bench: failed: ${failed[*]}"; exit 1; }
