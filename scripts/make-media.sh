#!/usr/bin/env bash
# Makes the encoded test clips the benchmarks replay (VP8 + Opus WebM, 720p30, 65 s), once;
# they are cached under $EGRESS_CACHE/media and reused. senderN.webm is encoded as a WebRTC
# sender streams (one keyframe, then delta frames only), senderN-intra.webm is its all-intra copy
# from which the replay answers key-unit requests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
media="$EGRESS_CACHE/media"
mkdir -p "$media"
hues=(0 90 180 270)
freqs=(330 440 550 660)
for i in 1 2 3 4; do
  clip="$media/clip$i.webm"
  [ -s "$clip" ] && continue
  echo "make-media: encoding $clip" >&2
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=65,hue=h=${hues[$((i-1))]}" \
    -f lavfi -i "sine=frequency=${freqs[$((i-1))]}:duration=65:sample_rate=48000" \
    -c:v libvpx -deadline realtime -cpu-used 8 -b:v 1500k -g 60 -c:a libopus -b:a 48k \
    "$clip.tmp.webm"
  mv "$clip.tmp.webm" "$clip"
done
for i in 1 2 3 4; do
  video="testsrc2=size=1280x720:rate=30:duration=65,hue=h=${hues[$((i-1))]}"
  for kind in "" "-intra"; do
    clip="$media/sender$i$kind.webm"
    [ -s "$clip" ] && continue
    echo "make-media: encoding $clip" >&2
    if [ -z "$kind" ]; then gop=(-g 100000 -b:v 1500k); else gop=(-g 1 -b:v 6000k); fi
    ffmpeg -v error -y -f lavfi -i "$video" -c:v libvpx -deadline realtime -cpu-used 8 "${gop[@]}" \
      "$clip.tmp.webm"
    mv "$clip.tmp.webm" "$clip"
  done
done
echo "$media"
