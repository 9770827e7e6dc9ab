#!/usr/bin/env bash
# The systemd unit: `systemd-analyze verify` accepts it (with ExecStart pointed at the
# built binary), `systemd-analyze security` rates it at exposure <= 3.0, and
# `make install DESTDIR=...` puts binary, unit, config and the default model in place.
set -u
cd "$(dirname "$0")/.."
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
sed "s|/usr/local/bin/commentaryd|$PWD/build/bin/commentaryd|" systemd/commentaryd.service \
    > "$tmp/commentaryd.service"
if out=$(systemd-analyze verify "$tmp/commentaryd.service" 2>&1) && [ -z "$out" ]; then
    echo "ok   systemd-analyze verify"
else
    echo "FAIL systemd-analyze verify: $out"; fail=1
fi
level=$(systemd-analyze security --offline=yes "$tmp/commentaryd.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 3.0) }'; then
    echo "ok   systemd-analyze security: exposure $level"
else
    echo "FAIL systemd-analyze security: exposure '$level' (want <= 3.0)"; fail=1
fi
grep -q '^Type=notify' systemd/commentaryd.service && grep -q '^WatchdogSec=' systemd/commentaryd.service ||
    { echo "FAIL unit is not Type=notify with a watchdog"; fail=1; }
if make -s install DESTDIR="$tmp/root" PREFIX=/usr/local >"$tmp/install.log" 2>&1; then
    for f in usr/local/bin/commentaryd usr/local/bin/commentary etc/systemd/system/commentaryd.service \
             etc/commentaryd/commentaryd.json usr/local/share/commentaryd/models/default/config.json \
             usr/local/share/commentaryd/models/default/tokenizer.json; do
        [ -e "$tmp/root/$f" ] || { echo "FAIL make install did not put $f"; fail=1; }
    done
    grep -q '"model": "/usr/local/share/commentaryd/models/default"' "$tmp/root/etc/commentaryd/commentaryd.json" ||
        { echo "FAIL installed config does not point at the installed model"; fail=1; }
    "$tmp/root/usr/local/bin/commentaryd" --config "$tmp/root/etc/commentaryd/commentaryd.json" --check-config \
        >/dev/null 2>&1 || { echo "FAIL installed config does not pass --check-config"; fail=1; }
    [ $fail = 0 ] && echo "ok   make install"
else
    echo "FAIL make install"; cat "$tmp/install.log"; fail=1
fi
# another PREFIX: the unit runs the binary and finds the files where they went
if make -s install DESTDIR="$tmp/usr" PREFIX=/usr >"$tmp/install.log" 2>&1; then
    u="$tmp/usr/etc/systemd/system/commentaryd.service"
    if grep -q '^ExecStart=/usr/bin/commentaryd ' "$u" && grep -q '^WorkingDirectory=/usr/share/commentaryd$' "$u" &&
       ! grep -q /usr/local "$u"; then
        echo "ok   make install PREFIX=/usr: the unit points at /usr"
    else
        echo "FAIL make install PREFIX=/usr: the unit says $(grep -E '^(ExecStart|WorkingDirectory)' "$u")"; fail=1
    fi
else
    echo "FAIL make install PREFIX=/usr"; cat "$tmp/install.log"; fail=1
fi
exit $fail
