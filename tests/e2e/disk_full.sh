#!/usr/bin/env bash
# Disk full (tests/fault/enospc.cpp under LD_PRELOAD: writes to regular files fail with ENOSPC
# after a byte budget): each stage exits 1 or 2 (never a signal), leaves neither its output nor a
# temporary file behind, and keeps what it had finished; with the space back, the same command
# works (training resumes to the weights of an uninterrupted run).
# usage: disk_full.sh DSIR LIBENOSPC WORKDIR
set -uo pipefail
dsir=$1 enospc=$2 work=$3
# A sanitizer build (DSIR_SANITIZE) needs ASan's runtime first among the preloaded libraries.
asan_runtime=$(ldd "$dsir" | awk '$1 ~ /^libasan/ { print $3 }')
[[ -n $asan_runtime ]] && enospc=$asan_runtime:$enospc
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAILED: $1"; }
full() { out=$(LD_PRELOAD=$enospc DSIR_FAULT_ENOSPC_AFTER=$1 timeout 120 "${@:2}" 2>&1); code=$?; }
leftovers() { find "$work" -name '.*.tmp*' | wc -l; }

"$dsir" simulate run.dir="$work/sim" run.seed=3 simulate.train.frames=40 simulate.train.width=32 \
  simulate.train.height=32 >/dev/null 2>&1 || bad "simulate"
tif=$work/sim/sim/train.tif csv=$work/sim/sim/train.csv

# A stage that fails on a full disk: exit 1 or 2, the output named, nothing left behind.
expect_clean_failure() {  # what output
  if [[ ($code -eq 1 || $code -eq 2) && $out == *"$2"* && ! -e $2 && $(leftovers) -eq 0 ]]; then
    ok "$1 on a full disk: exit $code, names the output, leaves nothing"
  else
    bad "$1 on a full disk (exit $code, output exists: $([[ -e $2 ]] && echo yes || echo no), temporaries: $(leftovers)): $out"
  fi
}

for budget in 0 4096 60000; do
  full $budget "$dsir" ingest --frames "$tif" --locs "$csv" --output "$work/raw.h5"
  expect_clean_failure "ingest (budget $budget bytes)" "$work/raw.h5"
done
"$dsir" ingest --frames "$tif" --locs "$csv" --output "$work/raw.h5" >/dev/null 2>&1 && [[ -e $work/raw.h5 ]] &&
  ok "ingest with the space back" || bad "ingest with the space back"

for budget in 0 100000; do
  full $budget "$dsir" upscale --input "$work/raw.h5" --output "$work/up.h5"
  expect_clean_failure "upscale (budget $budget bytes)" "$work/up.h5"
done
"$dsir" upscale --input "$work/raw.h5" --output "$work/up.h5" >/dev/null 2>&1 && [[ -e $work/up.h5 ]] &&
  ok "upscale with the space back" || bad "upscale with the space back"

# Training: the second epoch's checkpoint onto a full disk keeps the first epoch's checkpoint;
# with the space back, --resume ends with the weights of an uninterrupted run, bit for bit.
# A constant rate: the resumed run extends --epochs, which a schedule would span.
train=("$dsir" train --input "$work/up.h5" run.seed=5 run.threads=1 train.batch_size=8 train.validation_fraction=0.25
       train.lr_schedule=constant)
"${train[@]}" --output "$work/train-ref" --epochs 2 >/dev/null 2>&1 || bad "uninterrupted training"
"${train[@]}" --output "$work/train" --epochs 1 >/dev/null 2>&1 || bad "first epoch"
ckpt1=$work/train/checkpoint-epoch-0001.h5
cp "$ckpt1" "$work/ckpt1.copy"
full 0 "${train[@]}" --output "$work/train" --epochs 2 --resume
if [[ ($code -eq 1 || $code -eq 2) && ! -e $work/train/checkpoint-epoch-0002.h5 && $(leftovers) -eq 0 ]] &&
   cmp -s "$ckpt1" "$work/ckpt1.copy"; then
  ok "train: epoch 2's checkpoint on a full disk: exit $code, epoch 1's checkpoint intact, nothing left"
else
  bad "train on a full disk (exit $code, temporaries $(leftovers)): $out"
fi
"${train[@]}" --output "$work/train" --epochs 2 --resume >/dev/null 2>&1 || bad "resume with the space back"
if h5diff "$work/train-ref/checkpoint-epoch-0002.h5" "$work/train/checkpoint-epoch-0002.h5" /state /state \
  >/dev/null 2>&1; then
  ok "train: resumed with the space back, the weights equal the uninterrupted run's"
else
  bad "train: resumed weights differ from the uninterrupted run's"
fi

# Inference and reduction onto a full disk, then with space.
infer=("$dsir" infer run.threads=1 infer.shard_frames=8 --checkpoint "$work/train-ref/model.h5" --input "$work/raw.h5"
       --output "$work/infer")
full 0 "${infer[@]}"
if [[ ($code -eq 1 || $code -eq 2) && -z $(find "$work/infer" -name 'shard-*.h5' 2>/dev/null) && $(leftovers) -eq 0 ]]; then
  ok "infer on a full disk: exit $code, no shard, nothing left"
else
  bad "infer on a full disk (exit $code, temporaries $(leftovers)): $out"
fi
"${infer[@]}" >/dev/null 2>&1 || bad "infer with the space back"
full 0 "$dsir" reduce --input "$work/infer" --output "$work/recon"
if [[ ($code -eq 1 || $code -eq 2) && -z $(find "$work/recon" -type f 2>/dev/null) && $(leftovers) -eq 0 ]]; then
  ok "reduce on a full disk: exit $code, no output, nothing left"
else
  bad "reduce on a full disk (exit $code, files: $(find "$work/recon" -type f 2>/dev/null | tr '\n' ' ')): $out"
fi
"$dsir" reduce --input "$work/infer" --output "$work/recon" >/dev/null 2>&1 &&
  [[ -n $(find "$work/recon" -name '*.h5') ]] && ok "reduce with the space back" || bad "reduce with the space back"


# The same under mpirun -np 2 (the injector in the ranks only, not in mpirun): an error that one
# rank meets while the other waits in a collective must end the job within 60 s with exit 1 or 2.
source "$(dirname "$0")/mpi_env.sh"
mpi_full() {  # BUDGET COMMAND...
  local start=$SECONDS
  out=$(timeout 120 "${MPIRUN[@]}" 2 -x LD_PRELOAD="$enospc" -x DSIR_FAULT_ENOSPC_AFTER="$1" "${@:2}" 2>&1)
  code=$? took=$((SECONDS - start))
}
expect_clean_mpi_failure() {  # what output
  if [[ ($code -eq 1 || $code -eq 2) && $took -le 60 && ! -e $2 && $(leftovers) -eq 0 ]]; then
    ok "$1 under mpirun -np 2 on a full disk: exit $code in ${took} s, leaves nothing"
  else
    bad "$1 under mpirun -np 2 on a full disk (exit $code in ${took} s, output exists: $([[ -e $2 ]] && echo yes || echo no), temporaries: $(leftovers)): $out"
  fi
}
mpi_full 100000 "$dsir" upscale --input "$work/raw.h5" --output "$work/up-np2.h5"
expect_clean_mpi_failure "upscale" "$work/up-np2.h5"
# Training: rank 0 writes the checkpoint while rank 1 goes on to the next epoch's collectives.
rm -rf "$work/train-np2"
mpi_full 0 "${train[@]}" --output "$work/train-np2" --epochs 2
expect_clean_mpi_failure "train (the first checkpoint)" "$work/train-np2/checkpoint-epoch-0001.h5"
infer_np2=("$dsir" infer run.threads=1 infer.shard_frames=8 --checkpoint "$work/train-ref/model.h5" --input "$work/raw.h5"
           --output "$work/infer-np2")
mpi_full 0 "${infer_np2[@]}"
expect_clean_mpi_failure "infer" "$work/infer-np2/raw/shard-00000.h5"
first_shard_sum() { h5dump -d /sum "$1/raw/shard-00000.h5" | tail -n +2; }
"${MPIRUN[@]}" 2 "${infer_np2[@]}" >/dev/null 2>&1 &&
  cmp -s <(first_shard_sum "$work/infer") <(first_shard_sum "$work/infer-np2") &&
  ok "infer under mpirun -np 2 with the space back: the first shard's sum equals the one-rank run's" ||
  bad "infer under mpirun -np 2 with the space back"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
