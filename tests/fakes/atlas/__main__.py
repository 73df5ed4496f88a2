"""Run the loopback RIPE Atlas as a demo server.

    python -m tests.fakes.atlas --port 8443 --stream-port 8444 --dir /tmp/gw-fake-atlas

It prints the environment to point grenswacht at it, knows the recorded real measurements
1033154 (traceroute), 3082698 (traceroute) and 1071935 (DNS), and every ``--release-every``
seconds lets one more recorded result of every measurement (created ones included) arrive.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tests.fakes.atlas.server import FakeAtlas
from tests.fakes.atlas.state import DEMO_KEY, RECORDED


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.atlas")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--stream-port", type=int, default=8444)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/gw-fake-atlas"))  # noqa: S108
    parser.add_argument("--release-every", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=0, help="Stop after this long (0: never).")
    args = parser.parse_args()
    fake = FakeAtlas(args.dir, args.port, args.stream_port).start()
    for msm_id in RECORDED:
        fake.state.add_recorded(msm_id, tags=("grenswacht-demo",))
    print("loopback RIPE Atlas running; point grenswacht at it with:", flush=True)
    print(f"  export GRENSWACHT_ATLAS__BASE_URL={fake.base_url}")
    print(f"  export GRENSWACHT_ATLAS__STREAM_URL={fake.stream_url}")
    print(f"  export GRENSWACHT_ATLAS__CA_BUNDLE={fake.ca_file}")
    print(f"  export GRENSWACHT_ATLAS__API_KEY={DEMO_KEY}")
    print("  export GRENSWACHT_ATLAS__INVENTORY=examples/apps.toml")
    print("  export GRENSWACHT_ATLAS__PROBE_METADATA__ENABLED=true", flush=True)
    started = time.monotonic()
    try:
        while not args.seconds or time.monotonic() - started < args.seconds:
            time.sleep(args.release_every)
            for msm_id in list(fake.state.measurements):
                fake.state.release(msm_id, 1)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
