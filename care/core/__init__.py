"""The small core every capability stands on: the clock, the shop's config, money, codes,
time zones and quiet hours, message catalogues (i18n), sandboxed templates, QR codes, the audit
log, the one retry policy for busy databases (retry) and how far periodic jobs got (jobs).

Depends on nothing else in care/.
"""
