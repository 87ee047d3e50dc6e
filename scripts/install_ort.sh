#!/bin/sh
# Installs the pinned onnxruntime-node (CPU) into third_party/ort/node_modules.
# ONNXRUNTIME_NODE_INSTALL=skip stops its postinstall from trying to download the
# CUDA add-on (we are offline except for the npm registry); the CPU runtime ships
# inside the npm package. Idempotent: does nothing if the pinned version is present.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/third_party/ort"
cd "$DIR"
WANT=$(node -e "console.log(require('./package.json').dependencies['onnxruntime-node'])")
HAVE=$(node -e "try{console.log(require('./node_modules/onnxruntime-node/package.json').version)}catch(e){console.log('')}")
if [ "$HAVE" = "$WANT" ] && node -e "require('onnxruntime-node')" >/dev/null 2>&1; then
  echo "onnxruntime-node $HAVE already installed in $DIR/node_modules"
  exit 0
fi
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --no-save "onnxruntime-node@$WANT"
node -e "const o=require('onnxruntime-node'); console.log('onnxruntime-node', o.env.versions.node, 'installed in $DIR/node_modules')"
