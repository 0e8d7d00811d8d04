"""The taxonomy: partners, data sources, traits, segments, destinations, access mappings.

``load_taxonomy`` reads and checks a §11.2 YAML file, ``apply_taxonomy`` writes it to the
store in one transaction, ``export_taxonomy`` writes the store back out as YAML.
"""

from onramp.taxonomy.apply import ApplySummary, Counts, apply_taxonomy
from onramp.taxonomy.export import export_taxonomy
from onramp.taxonomy.load import demo_taxonomy_text, load_taxonomy
from onramp.taxonomy.models import Taxonomy

__all__ = [
    "ApplySummary",
    "Counts",
    "Taxonomy",
    "apply_taxonomy",
    "demo_taxonomy_text",
    "export_taxonomy",
    "load_taxonomy",
]
