"""``kluis demo``: a sample organisation in an empty vault, to try the product.

:mod:`vault.demo.sample` is the organisation (obviously fictional Dutch
names, no number shaped like a citizen service number), :mod:`.pictures`
draws its photos and its video, :mod:`.documents` writes its PDFs, and
:mod:`.fill` puts all of it into the vault through the services the API
uses, each step asked of the policy and put on the audit record.
"""
