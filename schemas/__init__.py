"""The contract every grenswacht component imports: messages, topics, errors, the bus.

This package imports nothing else of grenswacht and does no network I/O of its own
(the Kafka transport in :mod:`schemas.bus.kafka` only talks to a broker when opened).
"""
