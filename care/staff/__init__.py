"""Staff: who is staff and with which role, and the alerts a human should see now.

Depends on core and messaging.
"""
