"""``recstream train encoder``: fine-tune the sentence encoder on pairs of items the shop says
belong together, and write a model directory ``RECSTREAM_MODEL`` accepts."""
