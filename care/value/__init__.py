"""Customer value: BG/NBD and Gamma-Gamma, fitted on the shop's purchases and stored per member
(P(alive), expected purchases, expected spend per purchase, predicted 12-month value), and the
backtest that tells an owner which churn signal ranks their customers best.

Rank 3, beside segments: depends on core, messaging and members only. Segments and value do
not import each other; packages above use both.
"""
