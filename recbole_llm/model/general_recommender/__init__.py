"""General recommenders (one model per file; file name = class name lower-cased)."""
