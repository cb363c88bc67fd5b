#!/bin/sh
# Regenerates the base clips the simulator serves (needs ffmpeg; the runtime does not).
# One 1-second H.264 clip per (palette, aspect ratio): tiny, baseline profile, yuv420p and
# faststart, so any browser plays them. The simulator appends a per-request `free` box.
set -eu
cd "$(dirname "$0")"
palettes="0:0x2a9d8f:0xe9c46a 1:0xe76f51:0x264653 2:0x8338ec:0xffbe0b 3:0x06d6a0:0x118ab2"
sizes="16x9:64x36 9x16:36x64 1x1:48x48"
for p in $palettes; do
  index=${p%%:*}; rest=${p#*:}; c0=${rest%%:*}; c1=${rest#*:}
  for s in $sizes; do
    ratio=${s%%:*}; size=${s#*:}
    ffmpeg -v error -y -f lavfi \
      -i "gradients=s=${size}:d=1:r=10:c0=${c0}:c1=${c1}:speed=0.05" \
      -c:v libx264 -profile:v baseline -level 3.0 -pix_fmt yuv420p -g 10 \
      -movflags +faststart -an -map_metadata -1 -fflags +bitexact \
      "clip-${index}-${ratio}.mp4"
  done
done
