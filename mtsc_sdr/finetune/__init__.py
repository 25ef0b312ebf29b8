"""Federated split fine-tuning: the U-shaped step over the link (:mod:`.split`, :mod:`.link`),
what trains and travels (:mod:`.adapters`), and the Flower apps around it."""
