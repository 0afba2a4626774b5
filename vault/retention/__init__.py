"""Retention: when each category of a child's records is archived and destroyed.

:mod:`schedule` computes the dates from the placement and the configured
terms; :mod:`job` moves child keys into the right epochs, destroys what is
due (keys first, then the items' marks, then their blobs) and writes a
destruction certificate for each child and category; holds stop it.
"""
