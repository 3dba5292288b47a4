#!/usr/bin/env bash
# pytest in two phases (`just test`, `just test-fast`; arguments go to both): every test but the live-timing ones
# (tests/realtime but its clock_free modules: audio against a clock) in parallel, one worker per core (at most 4;
# TEST_WORKERS=N to choose), then the live-timing ones alone, so no other test takes the cores their deadlines need. Both phases always run;
# the exit status is the first failure's, or 5 when neither phase selected a test.
set -uo pipefail
cd "$(dirname "$0")/.."
cores=$(nproc)
workers=${TEST_WORKERS:-$((cores < 4 ? cores : 4))}
.venv/bin/pytest -n "$workers" --dist loadfile --live-timing skip "$@"
rest=$?
.venv/bin/pytest --live-timing only "$@"
timing=$?
for rc in $rest $timing; do
    [ "$rc" = 0 ] || [ "$rc" = 5 ] || exit "$rc"  # 5: no test selected in that phase
done
[ "$rest" = 5 ] && [ "$timing" = 5 ] && exit 5
exit 0
