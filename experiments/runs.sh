# Shared by the study scripts (source it): one training or evaluation at a time, timed, logged beside
# the run, resumable. Needs LGEN (the lgen executable).

train() {  # train OUT ARGS...: one run; OUT.done marks it finished, an interrupted one is resumed
  local out=$1; shift
  if [ -f "$out.done" ]; then return; fi
  if [ -f "$out/config.json" ]; then
    /usr/bin/time -f "%e s wall" -o "$out.time" "$LGEN" train --resume "$out" --no-progress >> "$out.log" 2>&1
  else
    /usr/bin/time -f "%e s wall" -o "$out.time" "$LGEN" train "$@" --out "$out" --no-progress > "$out.log" 2>&1
  fi
  touch "$out.done"
}

evaluate() {  # evaluate RUN [N]: metrics.json, report.md and figures in RUN (N samples, default 5000)
  local run=$1 n=${2:-5000}
  [ -f "$run/metrics.json" ] || /usr/bin/time -f "%e s wall" -o "$run.eval-time" \
    "$LGEN" evaluate "$run" --num-samples "$n" --no-progress > "$run.eval.log" 2>&1
}
