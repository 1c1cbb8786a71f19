"""The small core every capability stands on: the clock, the shop's config, money, codes,
time zones and quiet hours, message catalogues (i18n), sandboxed templates, QR codes and the audit
log.

Depends on nothing else in care/.
"""
