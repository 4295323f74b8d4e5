"""croissant.json: the built folder described in Croissant 1.0 (MLCommons), written beside the card.

The Hub makes a Croissant file of its own for a public dataset, but it gives class labels as bare
integers, and a private repository on a free account gets none; medical datasets are mostly private. So
each folder carries its own, made from the features datasets stored in its Parquet files:
- one RecordSet per config, a field per column, the split of each row taken from its file's name;
- images and masks as `sc:ImageObject` (the bytes of the column's struct);
- every class label an `sc:Integer` that references a RecordSet of `dataType` `sc:Enumeration` holding the
  class names (index -> name), so the names travel with the file;
- the objects of detection configs (GZMH, HEp-2 slides) as a field with repeated sub-fields: boxes (four
  numbers, COCO's [x, y, width, height] in pixels, said in their description: mlcroissant 1.1 cannot read
  a `cr:BoundingBox` from a Parquet list), centroids, areas, categories (with their names).
tests/test_croissant.py validates every folder's file with `mlcroissant` and reads its records back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard

CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "examples": {"@id": "cr:examples", "@type": "@json"},
    "equivalentProperty": "cr:equivalentProperty", "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField",
    "path": "cr:path", "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex",
    "repeated": "cr:repeated", "replace": "cr:replace", "samplingRate": "cr:samplingRate",
    "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField", "transform": "cr:transform",
}
SPLIT_OF_FILE = r"^(.*?)-\d{5}-of-\d{5}\.parquet$"
VECTORS = {"bbox": "the object's box in pixels, COCO order: [x, y, width, height]",
           "centroid": "the object's centre in pixels: [x, y]", "offset": "the tile's top-left corner in its image: [x, y]"}
VALUE_TYPES = {"string": "sc:Text", "bool": "sc:Boolean", "float32": "sc:Float", "float64": "sc:Float"}


def write_croissant(folder: Path, name: str):
    """croissant.json in `folder`, describing every config under data/ (the folder as it is now); the
    dataset's description, licence, source and citation are its card's (README.md)."""
    card = DatasetCard.load(folder / "README.md")
    prose = card.text
    source = next((part for part in prose.split("\n\n") if part.startswith("**Source.**")), "")
    url = re.search(r"https?://[^\s)>\]]+", source)
    bibtex = re.findall(r"```bibtex\n(.*?)```", prose, re.S)
    summary = prose.split("\n\n")[1] if prose.count("\n\n") > 1 else prose  # the paragraph under the title
    distribution, record_sets = [], []
    for config_folder in sorted(p for p in (folder / "data").iterdir() if p.is_dir()):
        config = config_folder.name
        files = sorted(config_folder.glob("*.parquet"))
        if not files:
            continue
        file_set = f"{config}-parquet"
        distribution.append({"@type": "cr:FileSet", "@id": file_set, "name": file_set,
                             "encodingFormat": "application/x-parquet", "includes": f"data/{config}/*.parquet"})
        features = datasets.Features.from_arrow_schema(pq.read_schema(files[0]))
        fields = [{"@type": "cr:Field", "@id": f"{config}/split", "name": "split", "dataType": "sc:Text",
                   "source": {"fileSet": {"@id": file_set}, "extract": {"fileProperty": "filename"},
                              "transform": {"regex": SPLIT_OF_FILE}}}]
        for column, feature in features.items():
            fields.append(field_of(config, f"{config}/{column}", column, feature, file_set, record_sets))
        record_sets.append({"@type": "cr:RecordSet", "@id": config, "name": config,
                            "description": f"The rows of config {config}, every split (the `split` field).",
                            "field": fields})
    metadata = {"@context": CONTEXT, "@type": "sc:Dataset", "name": name,
                "description": f"{card.data.get('pretty_name', name)}. {' '.join(summary.split())}",
                "conformsTo": "http://mlcommons.org/croissant/1.0",
                "citeAs": "\n".join(b.strip() for b in bibtex) or re.sub(r"\s+", " ", source.replace("**Source.**", "")).strip(),
                "license": card.data.get("license_link") or card.data.get("license", "unknown"),
                "url": url[0].rstrip(".,;") if url else "",
                "distribution": distribution, "recordSet": record_sets}
    (folder / "croissant.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")


def field_of(config: str, field_id: str, column: str, feature, file_set: str, record_sets: list,
             path: list[str] | None = None) -> dict:
    """The Croissant field of one column (or of one member of the `objects` struct, `path` leading to it)."""
    source = {"fileSet": {"@id": file_set}, "extract": {"column": (path or [column])[0]}}
    if path and len(path) > 1:
        source["transform"] = {"jsonPath": ".".join(path[1:])}
    field = {"@type": "cr:Field", "@id": field_id, "name": column, "source": source}
    inner, repeated = feature, False
    while isinstance(inner, (datasets.Sequence, datasets.List)) and not _is_vector(inner):
        inner, repeated = inner.feature, True
    if repeated:
        field["repeated"] = True
    if isinstance(inner, dict):  # the objects of an image: a field of repeated sub-fields
        field.pop("source")
        field["subField"] = [field_of(config, f"{field_id}/{key}", key, value, file_set, record_sets,
                                      [*(path or [column]), key]) for key, value in inner.items()]
        return field
    if isinstance(inner, datasets.Image):
        field["dataType"] = "sc:ImageObject"
        source["transform"] = {"jsonPath": "bytes"}
    elif isinstance(inner, datasets.ClassLabel):
        classes = f"{field_id}-classes"
        record_sets.append({
            "@type": "cr:RecordSet", "@id": classes, "name": classes, "dataType": "sc:Enumeration",
            "description": f"The class names of {field_id}: the value is the index.",
            "key": {"@id": f"{classes}/index"},
            "field": [{"@type": "cr:Field", "@id": f"{classes}/index", "name": "index", "dataType": "sc:Integer"},
                      {"@type": "cr:Field", "@id": f"{classes}/name", "name": "name", "dataType": "sc:Text"}],
            "data": [{f"{classes}/index": index, f"{classes}/name": label} for index, label in enumerate(inner.names)]})
        field["dataType"] = "sc:Integer"
        field["references"] = {"field": {"@id": f"{classes}/index"}}
    elif _is_vector(inner):  # (mlcroissant 1.1 reads no cr:BoundingBox from Parquet lists: numbers it is)
        field["dataType"] = "sc:Float" if inner.feature.dtype.startswith("float") else "sc:Integer"
        field["description"] = VECTORS.get(column, f"{inner.length} numbers")
    else:
        field["dataType"] = VALUE_TYPES.get(getattr(inner, "dtype", ""), "sc:Integer")
    return field


def _is_vector(feature) -> bool:
    """A fixed-length list of numbers (a box's four, a centroid's two, an offset)."""
    return (isinstance(feature, (datasets.Sequence, datasets.List)) and getattr(feature, "length", -1) > 0
            and isinstance(feature.feature, datasets.Value))
