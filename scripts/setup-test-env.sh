#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages, then makes sure Redis answers:
#   - Debian's python3-torch, python3-onnx, python3-numpy, python3-pil, python3-sklearn (model export
#     and reference computations under tools/), via tools/install-python-deps.sh;
#   - Debian's black and flake8 (formatting and lint of the Python, npm run lint:python);
#   - redis-server, started on 127.0.0.1:6379 when nothing answers there.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends "$@" ||
    { as_root apt-get update && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends "$@"; }
}

bash tools/install-python-deps.sh
# Debian's black and flake8 (npm run lint:python), run with /usr/bin/python3 like the tools.
/usr/bin/python3 -c 'import black, flake8' 2>/dev/null || apt_install black flake8
command -v chromium >/dev/null || apt_install chromium # the explorer's browser test (test/explorer.test.ts)

redis_answers() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

if ! redis_answers; then
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --daemonize yes --port 6379 --bind 127.0.0.1 --save "" --appendonly no
  for _ in $(seq 1 50); do redis_answers && break; sleep 0.1; done
  redis_answers || { echo "redis-server did not start on 127.0.0.1:6379" >&2; exit 1; }
fi
echo "test environment ready: python deps installed, Redis answering on 127.0.0.1:6379"
