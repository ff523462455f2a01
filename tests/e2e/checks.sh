# Sourced by the script tests: counted checks and the closing "N passed, N failed" line.
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }
# The common part of check and once: runs the command (120 s at most) and passes when its exit
# code and output match and the function CONDITION, which sees the output as $out, agrees.
#   expect NAME EXPECTED_CODE PATTERN CONDITION WHAT_CONDITION_WANTS -- command...
expect() {
  local name=$1 want=$2 pattern=$3 condition=$4 wants=$5
  shift 6
  local out code
  out=$(timeout 120 "$@" 2>&1)
  code=$?
  if { [[ $want == nonzero && $code -ne 0 && $code -ne 124 ]] || [[ $code == "$want" ]]; } &&
    grep -qE -- "$pattern" <<<"$out" && "$condition"; then
    ok "$name"
  else
    bad "$name (exit $code, wanted $want and /$pattern/$wants)"
    echo "$out" | grep -vE "frames \([0-9]+%\)" | tail -25
  fi
}
anything() { true; }
one_error_line() { [[ $(grep -c "^dsir: error" <<<"$out") -eq 1 ]] && ! grep -q "ERROR on rank" <<<"$out"; }
# check NAME EXPECTED_CODE PATTERN -- command...: exit code (or "nonzero", not a timeout) and output
check() { expect "$1" "$2" "$3" anything "" "${@:4}"; }
# once NAME EXPECTED_CODE PATTERN -- command...: an error every rank reached, printed once
once() { expect "$1" "$2" "$3" one_error_line " and exactly one 'dsir: error' line" "${@:4}"; }
same_outputs() {  # same_outputs WHEN REF OUT ACQUISITION...: reduce's outputs identical byte for byte
  local when=$1 ref=$2 out=$3 a f
  shift 3
  for a in "$@"; do
    for f in localizations.csv reconstruction.tif; do
      cmp -s "$ref/$a/$f" "$out/$a/$f" && ok "$a/$f identical $when" || bad "$a/$f differs $when"
    done
  done
}
