"""Neural-network building blocks with PyTorch's names: ``tinylm.nn`` and ``tinylm.nn.functional``.

Each part below is imported from its own module; see DESIGN.md for the layout.
"""
