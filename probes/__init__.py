"""The self-hosted vantage-point agent: a task in, RIPE Atlas-format results out.

``probes.runners.RUNNERS`` maps task kinds to runners (rootless UDP Paris traceroute,
scamper ICMP/TCP traceroute, MDA, DNS); ``probes.agent.Agent`` consumes tasks from the
bus or a local schedule and publishes results. See docs/probes.md.
"""
