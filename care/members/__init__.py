"""Members: who a Telegram user is to the shop, registration and consent, finding a member
the way staff know them, and a member's own data (export and erasure).

Depends on core and messaging.
"""
