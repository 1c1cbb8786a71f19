"""The staff console's reads: the shop's numbers and charts, exports, the 360° member view
and profile corrections only staff may make.

The top of care/: may use any package below it.
"""
