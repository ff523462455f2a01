# A "lab's" acquisition whose camera nobody typed, for the auto-mode tests (tests/e2e/auto_run.sh,
# tests/slurm/slurm_auto.sh): an EMCCD stack of base 180 ADU and 2 ADU per photon (EM gain 100 at
# 50 e-/ADU), 300 sparse frames of 48x48. usage: lab_stack DSIR WORK_DIR OUTPUT.tif
lab_stack() {
  local dsir=$1 work=$2 out=$3
  "$dsir" simulate run.dir="$work/lab" simulate.train.frames=0 simulate.acquisition.frames=300 \
    simulate.acquisition.width=48 simulate.acquisition.height=48 simulate.acquisition.density=0.5 \
    simulate.acquisition.structure=uniform camera.base_level=180 camera.em_gain=100 camera.e_per_adu=50 \
    'psf.fwhm_nm=[260, 260]' 'psf.photons=[800, 2000]' >"$work/lab.log" 2>&1 || { cat "$work/lab.log"; return 1; }
  mv "$work/lab/sim/acquisition.tif" "$out"
}
