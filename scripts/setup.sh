#!/usr/bin/env bash
# Installs what clocgpu needs on a fresh Debian/Ubuntu machine: Deno (from npm) and, when there is no
# WebGPU adapter, Mesa's software Vulkan driver. Safe to run again: it skips what is already there.
set -euo pipefail
DENO_VERSION=2.9.6

if ! command -v deno >/dev/null 2>&1 || ! deno --version | grep -q "deno ${DENO_VERSION}"; then
  echo "Installing Deno ${DENO_VERSION} from npm"
  npm install -g "deno@${DENO_VERSION}" >/dev/null 2>&1 || npm install --no-save "deno@${DENO_VERSION}"
fi

if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
  echo "Installing Mesa's Vulkan drivers (software WebGPU adapter)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing Fashion-MNIST (optional data set)"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; } ||
    echo "Fashion-MNIST not installed: the fashion mosaics will be unavailable"
fi

# Cache the npm packages the code imports, so the first run does not wait on them.
deno install --quiet >/dev/null 2>&1 || deno cache mod.ts >/dev/null
