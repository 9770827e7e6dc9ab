#!/usr/bin/env bash
# Runs every test: the C test binaries (build/tests/test-*) and the script tests
# (tests/t-*.sh, one test each: exit 0 pass, 77 skip, anything else fail).
# Prints each result and ends with the line "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0 skip=0
log=build/test-logs
mkdir -p "$log"
count() {  # count PASS/FAIL/SKIP lines of one binary's output
    while IFS= read -r line; do
        echo "$line"
        case "$line" in
            PASS\ *) pass=$((pass + 1)) ;;
            FAIL\ *) fail=$((fail + 1)) ;;
            SKIP\ *) skip=$((skip + 1)) ;;
        esac
    done
}
for t in build/tests/test-*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "== $name"
    count < <("$t" 2>"$log/$name.stderr"; echo "EXIT $?" >"$log/$name.rc")
    rc=$(sed 's/EXIT //' "$log/$name.rc")
    if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
        echo "FAIL $name: runner exited $rc"; fail=$((fail + 1))
    fi
    if grep -q . "$log/$name.stderr"; then sed 's/^/    /' "$log/$name.stderr" | tail -n 40; fi
done
for s in tests/t-*.sh; do
    [ -f "$s" ] || continue
    name=$(basename "$s" .sh)
    t0=$(date +%s%N)
    timeout "${SCRIPT_TIMEOUT:-600}" bash "$s" >"$log/$name.out" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    case $rc in
        0) echo "PASS $name ($ms ms)"; pass=$((pass + 1)) ;;
        77) echo "SKIP $name: $(tail -n 1 "$log/$name.out")"; skip=$((skip + 1)) ;;
        *) echo "FAIL $name: exit $rc"; sed 's/^/    /' "$log/$name.out" | tail -n 40; fail=$((fail + 1)) ;;
    esac
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
