#!/usr/bin/env bash
# Runs ON THE GPU MACHINE (the device tool), after `bash scripts/gpu-deps.sh` here:
#   command: bash scripts/gpu-check.sh     carry: [".devdeps"]
# Builds dsir against that machine's LibTorch 2.x with CUDA (its Python torch) and Debian 12's
# other libraries unpacked from .devdeps, then: the CUDA tests (label cuda: DSIR parity on the GPU,
# GPU training step = CPU step, pinned-staging and NCCL transports), the 2-rank data-parallel test
# with both ranks on the GPU, `dsir predict --device cuda` against DSIR's output from /raw, and the
# GPU benchmarks against DSIR's own PyTorch code on the same GPU. Logs and summary.txt go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
summary=$OUT/summary.txt
say() { echo "== $*" | tee -a "$summary"; }
step() {  # step NAME CMD...: runs, logs to $OUT/NAME.log, records the status
  local name=$1; shift
  local t0=$SECONDS
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  say "$name: rc=$rc ($((SECONDS - t0)) s)"
  tail -n 15 "$OUT/$name.log"
  return $rc
}

say "machine: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null), $(nproc) cores, $(date -u +%FT%TZ)"
root=/tmp/debroot
multi=$root/usr/lib/x86_64-linux-gnu
mkdir -p "$root"
for d in .devdeps/debs/*.deb; do dpkg -x "$d" "$root"; done
export LD_LIBRARY_PATH=$multi:$multi/openmpi/lib:$multi/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Open MPI and PMIx unpacked away from /usr: tell them where they are.
export OPAL_PREFIX=$root/usr OPAL_EXEC_PREFIX=$root/usr OPAL_BINDIR=$root/usr/bin OPAL_LIBDIR=$multi/openmpi/lib \
  OPAL_PKGLIBDIR=$multi/openmpi/lib/openmpi3 OPAL_DATADIR=$root/usr/share OPAL_DATAROOTDIR=$root/usr/share \
  OPAL_PKGDATADIR=$root/usr/share/openmpi OPAL_SYSCONFDIR=$root/etc/openmpi OPAL_INCLUDEDIR=$multi/openmpi/include \
  OPAL_PKGINCLUDEDIR=$multi/openmpi/include/openmpi PMIX_PREFIX=$multi/pmix2 PMIX_INSTALL_PREFIX=$multi/pmix2
export PATH=$root/usr/bin:$PATH OMPI_MCA_ess_singleton_isolated=1
[[ -d /usr/local/cuda/bin ]] && export PATH=$PATH:/usr/local/cuda/bin
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
  OMPI_MCA_rmaps_base_oversubscribe=1
python=$(command -v python3)
torch_cmake=$($python -c 'import torch; print(torch.utils.cmake_prefix_path)')
say "torch: $($python -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())'); $(g++ --version | head -1); $(cmake --version | head -1)"
nccl_root=$(dirname "$(dirname "$(find "$(dirname "$torch_cmake")/../.." -name nccl.h -path '*nvidia*' 2>/dev/null | head -1)")")
say "nccl: $nccl_root"

build=/tmp/build-gpu
step configure cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSIR_BUILD_BENCH=ON \
  -DCMAKE_PREFIX_PATH="$torch_cmake;$root/usr" -DNCCL_ROOT="$nccl_root" \
  -DMPI_CXX_COMPILER=$root/usr/bin/mpicxx.openmpi -DMPI_C_COMPILER=$root/usr/bin/mpicc.openmpi \
  -DMPIEXEC_EXECUTABLE=$root/usr/bin/orterun -DDSIR_MPIEXEC=$root/usr/bin/orterun -DHDF5_C_COMPILER_EXECUTABLE=none \
  -DHDF5_C_INCLUDE_DIR=$root/usr/include/hdf5/serial -DHDF5_hdf5_LIBRARY_RELEASE=$multi/hdf5/serial/libhdf5.so \
  -DCMAKE_CXX_FLAGS="-isystem $root/usr/include/x86_64-linux-gnu" -DDSIR_SHARED_DIR=$PWD/.devdeps/shared \
  || { cp $build/CMakeFiles/CMakeError.log "$OUT/" 2>/dev/null; exit 1; }
grep -E "LibTorch with CUDA|NCCL" "$OUT/configure.log" | tee -a "$summary"
step build cmake --build $build -j "$(nproc)" || exit 1

cd $build
step cuda_tests ctest -L cuda --output-on-failure
step predict_tests ctest -R "Predict\.|Predictor\.|DsirNet|SyncBatchNorm|GradientReducer" --output-on-failure
step mpi_gpu orterun --oversubscribe --bind-to none -np 2 stages/train/test_train_mpi
grep -E "OK|SKIPPED|FAILED" "$OUT/mpi_gpu.log" | sed 's/\x1b\[[0-9;]*m//g' | sort | uniq -c | tee -a "$summary"
cd - >/dev/null

# A crash in a test: where (cuda-gdb debugs host code too; the image has no gdb).
if grep -q "Segmentation fault" "$OUT/predict_tests.log" && command -v cuda-gdb >/dev/null; then
  (cd $build && cuda-gdb -q -batch -ex run -ex bt --args tests/test_predict --gtest_filter='Predict.ReproducesDsirFromTheRawFrame') \
    >"$OUT/crash.log" 2>&1
  grep -E "^#[0-9]+ " "$OUT/crash.log" | head -20
fi

# Benchmarks: dsir on the GPU against DSIR's PyTorch loop on the same GPU (GPU_CHECK_BENCH=0: skip).
[[ ${GPU_CHECK_BENCH:-1} == 0 ]] && { say "done (no benchmarks)"; exit 0; }
step bench_gpu bash bench/gpu_bench.sh $build .devdeps/shared/reference/dsir/reference_26px.h5
grep -E "^(dsir|DSIR)" "$OUT/bench_gpu.log" | tee -a "$summary"
say "done"
