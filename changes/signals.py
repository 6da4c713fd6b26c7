"""What other apps may listen to, without this app importing them.

``change_request_applied(sender=ChangeRequest, change_request=cr, actor=str)`` is
sent inside the apply's transaction, after every change is written: a receiver
sees the new state, and what it writes (a release snapshot) commits with the
change, or neither does. A receiver that raises fails the apply (nothing written).
"""
from django.dispatch import Signal

change_request_applied = Signal()
