#!/usr/bin/env bash
# Composite benchmarks: prints CPU per media second for the worker and for ffmpeg, and the ratio,
# for a recording and for a broadcast (recording + HLS ladder + RTMP push to a local nginx-rtmp).
# Then a frames-only job of 20 participants (bench/frames.py) and the upload throughput to the
# S3, GCS and Azure emulators against curl (bench/storage_upload.py), and the transcription
# figures: real-time factor, caption latency, word error rate (bench/transcription.py), tiny.en against the multilingual base (bench/models.py), and the
# join latency of a real Janus call with the CPU of the ingest path per participant (an ignored
# test of tests/janus.rs, which owns the Janus test bed and its WebRTC publishers).
# Then the soak (tests/fleet.rs, ignored) and the outages at full length.
# BENCH_RUNS (default 3), BENCH_SECONDS (default 60) and BENCH_SCENARIOS tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/test-deps.sh
source scripts/env.sh
media=$(bash scripts/make-media.sh)
source scripts/rtmp-server.sh
BENCH_RTMP_PORT=$RTMP_PORT python3 bench/composite.py "$EGRESS_BIN" "$media"
echo "== frames =="
python3 bench/frames.py "$EGRESS_BIN" "$media"
echo "== transcription =="
python3 bench/transcription.py "$EGRESS_BIN"
python3 bench/models.py "$EGRESS_BIN" "$EGRESS_CACHE/models"
echo "== storage upload =="
"$EGRESS_CACHE/venv/bin/python" bench/storage_upload.py "$EGRESS_BIN" "$EGRESS_CACHE"
echo "== Janus join latency and ingest CPU =="
cargo test --release --locked --test janus -- --ignored --nocapture bench_join_latency_and_ingest_cpu 2>&1 \
  | grep -E "^(run|join latency|[0-9]+ publisher|ingest per)"
echo "== control messages to their effect =="
cargo test --release --locked --test fleet -- --ignored --nocapture --test-threads=1 bench_control_to_effect bench_hls_started_during_the_call 2>&1 \
  | grep -E "^control:"
echo "== raw and individual recordings =="
cargo test --release --locked --test raw --test individual -- --ignored --nocapture --test-threads=1 \
  bench_raw_recording_cost_per_track bench_individual_recording_cost_per_participant 2>&1 \
  | grep -E "^(raw recording|individual recording)"
echo "== render after the call =="
cargo test --release --locked --test render -- --ignored --nocapture bench_render_speed_of_a_720p_grid_of_four 2>&1 \
  | grep -E "^render:"
echo "== soak: one worker through many short jobs (SOAK_JOBS, default 200) =="
cargo test --release --locked --test fleet -- --ignored --nocapture bench_soak_many_jobs_two_at_a_time 2>&1 \
  | grep -E "^soak:"
echo "== outages: RabbitMQ away 180 s, a webhook away 120 s =="
EGRESS_TEST_OUTAGE_S=180 cargo test --release --locked --test fleet -- --nocapture \
  events_of_jobs_ended_in_a_broker_outage_arrive_once_though_the_worker_died_in_it 2>&1 | grep -E "^outage"
EGRESS_TEST_OUTAGE_S=120 cargo test --release --locked --test fleet -- --nocapture \
  a_webhook_away_for_a_while_gets_every_event_once_it_is_back 2>&1 | grep -E "^webhook away"
