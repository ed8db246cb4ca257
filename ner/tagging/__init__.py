"""Bulk tagging (`python -m ner tag`): reading PubMed XML, plain-text and JSON-lines shards, and writing the
entities found as JSON lines, PubTator or BioC."""
