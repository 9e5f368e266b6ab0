"""mia_utils: the tested library behind the executable book on regularization and membership
inference (Kaya, Hong & Dumitras, 2020).

Modules: ``data`` (datasets and membership splits), ``models`` (VGG-style CNNs), ``config``
(validated run configurations), ``train`` (the one training loop), ``store`` (the result
store), ``experiment`` (run-or-load), ``attacks`` / ``metrics``, ``profiles`` (named sizes),
``report`` (published values and tables), ``chapters`` (notebook parameters) and ``cli``.
"""

__version__ = "0.1.0"
