"""Development tools shared by the tests and the benchmarks: stand-in models built in code, a live server.

Nothing here is used by the product itself; it lives outside `tests/` so `bench/` need not import tests.
"""
