"""``kluis demo``: a sample organisation in an empty vault, to try the product.

:mod:`vault.demo.sample` is the organisation (obviously fictional Dutch
names, no number shaped like a citizen service number), :mod:`.pictures`
draws its photos and its video, :mod:`.documents` writes its PDFs, and
:mod:`.fill` puts all of it into an empty vault through the services the
API uses (:mod:`.organisation`, :mod:`.records`), each step read, asked of
the policy and put on the audit record as the API would (:mod:`.acting`).
:mod:`.command` is the command itself: it prints where to sign in.
"""
