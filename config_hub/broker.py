"""kombu's Redis transport, made to survive a Redis restart (CELERY_BROKER_TRANSPORT).

Why the worker died (kombu 5.7, celery 5.7): when Redis goes away, the
consumer catches the connection error and tidies up in two steps
(``celery.worker.consumer.Consumer.on_connection_error_after_connected``):

1. ``connection.collect()`` closes the default channel and then detaches the
   transport (``transport.client = None``). But the channel's ``close()`` first
   reads the reply of the BRPOP it has in flight; on a dead socket that read
   raises, ``maybe_close_channel`` swallows the error, and the channel stays
   open, now belonging to a transport without a client.
2. ``connection.close()`` closes that channel again. This time it gets as far
   as restoring the unacknowledged messages, which needs a Redis client, whose
   parameters come from ``transport.client.hostname``:
   ``AttributeError: 'NoneType' object has no attribute 'hostname'``. That is
   not a connection error, so nothing catches it: "Unrecoverable error", and
   the worker exits (with acks_late and prefetch, a worker nearly always holds
   an unacknowledged message).

The fix, at that point: a failed read of the in-flight BRPOP reply during
``close()`` is the connection being gone, so the close goes on (the channel is
marked closed and the restore is attempted once, failing with a connection
error that kombu handles); and a channel whose transport was detached raises a
connection error instead of the AttributeError (an ``ack`` of a task that
finishes after the reconnect). The messages a dead Redis held are not lost to
the hub: undelivered events and deliveries are re-sent by the outbox sweep.
"""
from __future__ import annotations

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Empty
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def close(self):
        if self._in_poll and not self.closed:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors:
                self._in_poll = None  # the reply died with the server; go on closing
        super().close()

    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection of this channel was closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
