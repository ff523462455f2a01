#!/usr/bin/env bash
# report.html in a real browser (Debian's chromium, headless): it renders without a console
# message (the page has no script, so any is an error: a blocked load, a bad data: URI) and
# every image loads and decodes. The harness page frames the report and writes what it found on
# its <body>, read from --dump-dom. Two altered copies of the report, one picture's data cut
# short and a script that logs, must fail those checks, so they can fail.
# usage: report_in_browser.sh REPORT_HTML WORK
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../e2e/checks.sh"
report=$(realpath "$1")
work=$2
rm -rf "$work" && mkdir -p "$work"
work=$(realpath "$work")
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n $browser ]] || { echo "chromium not found: run scripts/install-deps.sh"; exit 1; }
[[ -s $report ]] || { echo "$report: missing (the e2e run's report stage)"; exit 1; }

# Loads REPORT in the harness; prints the <body> line of the DOM; console lines go to WORK/NAME.console.
open_in_browser() {
  local page=$1 name=$2
  # As root (CI, containers) chromium needs --no-sandbox; a profile of its own, removed after.
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$work/profile-$name" --allow-file-access-from-files \
    --enable-logging=stderr --v=0 --virtual-time-budget=10000 \
    --dump-dom "file://$here/report_harness.html#file://$page" 2>"$work/$name.log" |
    grep -o '<body[^>]*>' >"$work/$name.body"
  grep -F "CONSOLE" "$work/$name.log" | grep -F "$page" >"$work/$name.console" || true
  rm -rf "$work/profile-$name"
}
attr() { sed -n "s/.*$1=\"\([^\"]*\)\".*/\1/p" "$2"; }

open_in_browser "$report" report
body=$work/report.body
images=$(attr data-images "$body")
[[ -n $images ]] && ok "the report loaded in chromium" || bad "the report did not load (see $work/report.log)"
[[ ${images:-0} -ge 6 ]] && ok "it has the run's pictures (reconstruction, widefield, loss, preview, FRC, NeNA: $images)" ||
  bad "$images pictures, wanted at least 6"
[[ $(attr data-broken "$body") == 0 ]] && ok "every picture loaded and decoded" ||
  bad "pictures that did not load: $(attr data-broken-alts "$body")"
grep -q 'data-title="dsir run: ' "$body" && ok "its title names the run" || bad "title '$(attr data-title "$body")'"
[[ $(attr data-sections "$body") -ge 4 ]] && ok "it has its sections ($(attr data-sections "$body"))" ||
  bad "$(attr data-sections "$body") sections"
[[ ! -s $work/report.console ]] && ok "no console message from the report" ||
  bad "console messages: $(head -c 500 "$work/report.console")"

# The control: the first picture's data cut to a few bytes is a broken image.
sed '0,/base64,/s/base64,\([A-Za-z0-9+/]\{12\}\)[A-Za-z0-9+/=]*"/base64,\1"/' "$report" >"$work/broken.html"
open_in_browser "$work/broken.html" broken
[[ $(attr data-broken "$work/broken.body") == 1 ]] && ok "the control with a cut picture counts one broken image" ||
  bad "the control counted '$(attr data-broken "$work/broken.body")' broken images, wanted 1"
# And one with a script that logs: the console check must see it.
sed 's|</body>|<script>console.error("control message")</script></body>|' "$report" >"$work/noisy.html"
open_in_browser "$work/noisy.html" noisy
grep -q "control message" "$work/noisy.console" && ok "the control with a console message is caught" ||
  bad "the console message of the control was not seen (see $work/noisy.log)"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
