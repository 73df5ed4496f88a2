"""What to measure and when: the application inventory, vantage sets, RIPE Atlas
measurements (through ripe-atlas-cousteau), credit planning and collection. APScheduler is
imported only by :mod:`scheduler.app`; cousteau/requests/websocket only by
:mod:`scheduler.atlas`."""
