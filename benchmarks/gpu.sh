#!/usr/bin/env bash
# The GPU checks, unattended and without network, on a machine with one CUDA GPU and the project's
# packages installed (`pip install -e '.[warp]'`):
#   1. a smoke run of the env on MuJoCo Warp on CUDA,
#   2. the Warp backend tests on CUDA (tests/test_warp_backend.py with ROBOT_RL_TEST_WARP_DEVICE=cuda),
#   3. benchmarks/warp_throughput.py (our env over raw mujoco_warp.step, CUDA graphs),
#   4. iiwa-reach trained on Warp/CUDA until 95% success or the time budget.
# Logs go to $LOGDIR (default runs/gpu). Each stage has its own time limit; a failed stage does not
# stop the next. The first run compiles MuJoCo Warp's CUDA kernels (cached in $WARP_CACHE_PATH).
#
#   bash benchmarks/gpu.sh [stage ...]     # stages: smoke tests throughput train (default: all)
set -u
cd "$(dirname "$0")/.."
LOGDIR=${LOGDIR:-runs/gpu}
mkdir -p "$LOGDIR"
export PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-egl}
PY=${PY:-python3}
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(smoke tests throughput train)

run() {  # name, limit (s), command...
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$LOGDIR/$name.log"
    echo "== $name: rc=${PIPESTATUS[0]} in $((SECONDS - t0)) s"
}

for s in "${stages[@]}"; do
    case $s in
    smoke)
        run smoke 300 "$PY" - <<'EOF'
import time, torch
from robot_rl.sim import make_env
t0 = time.perf_counter()
env = make_env("iiwa-reach", 64, backend="warp", device="cuda", seed=0)
env.reset(); env.randomize_episode_start()
print(f"env built and reset in {time.perf_counter() - t0:.1f} s (kernel compilation included)")
for i in range(40):
    obs, rew, term, trunc, info = env.step(torch.rand(64, env.num_actions, device="cuda") * 2 - 1)
torch.cuda.synchronize()
assert torch.isfinite(obs["policy"]).all() and obs["policy"].device.type == "cuda"
print(f"40 steps ok on {torch.cuda.get_device_name()}; mean reward {rew.mean().item():.3f}; "
      f"graphs {sorted(env.sim._graphs)}; nan_resets {env.nan_resets}")
EOF
        ;;
    tests)
        run tests 300 env ROBOT_RL_TEST_WARP_DEVICE=cuda "$PY" -m pytest -q -p no:cacheprovider tests/test_warp_backend.py
        ;;
    throughput)
        run throughput 300 "$PY" benchmarks/warp_throughput.py --seconds 4 --rounds 3
        ;;
    train)
        run train 240 "$PY" -m robot_rl.cli train --env.task iiwa-reach --env.backend warp --env.device cuda \
            --env.num-envs 4096 --stop-at-success 0.95 --time-budget-s 150 --no-progress \
            --log-root "${TRAIN_ROOT:-$LOGDIR}" --run-name train
        ;;
    *) echo "unknown stage $s" ;;
    esac
done
