import pytest

from medsets.boxes import (BOX_FORMATS, BoxFileError, FileBox, box_format, coco_image_keys, read_boxes, read_coco,
                           read_csv, read_voc, read_yolo)


def voc(objects: str, filename: str = "<filename>img_07.png</filename>") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<annotation>\n  <folder>train</folder>\n'
            f"  {filename}\n  <size><width>512</width><height>256</height><depth>3</depth></size>\n"
            f"{objects}</annotation>\n").encode()


TWO_VOC_OBJECTS = """\
  <object><name>mitosis</name><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>30</xmax><ymax>25</ymax></bndbox></object>
  <object><name>Mitosis</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>1</xmax><ymax>1</ymax></bndbox>
    <centroid><x>0.5</x><y>0.5</y></centroid></object>
  <object><name>non-mitosis</name><bndbox><xmin>100</xmin><ymin>200</ymin><xmax>110</xmax><ymax>204</ymax></bndbox></object>
"""


def test_voc_several_objects_and_one_based_conversion():
    boxes = read_boxes("boxes/img_07.xml", voc(TWO_VOC_OBJECTS))
    assert boxes == [
        FileBox("img_07", (10.0, 20.0, 20.0, 5.0), None, source="boxes/img_07.xml"),
        FileBox("img_07", (0.0, 0.0, 1.0, 1.0), (0.5, 0.5), source="boxes/img_07.xml"),
        FileBox("img_07", (99.0, 199.0, 11.0, 5.0), None, source="boxes/img_07.xml"),
    ]


def test_voc_float_coordinates_and_filename_in_another_folder():
    objects = ("<object><name>mitosis</name><bndbox><xmin>12.0</xmin><ymin> 3.0 </ymin>"
               "<xmax>14.5</xmax><ymax>3.0</ymax></bndbox></object>\n")
    boxes = read_boxes("a.xml", voc(objects, r"<filename>C:\data\JPEGImages\slide_3.tif</filename>"))
    assert boxes == [FileBox("slide_3", (11.0, 2.0, 3.5, 1.0), None, source="a.xml")]


def test_voc_zero_objects_and_key_from_xml_stem_without_filename():
    assert read_boxes("dir/slide_9.XML", voc("", filename="")) == []
    objects = "<object><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"
    assert read_voc("dir/slide_9.xml", voc(objects, filename="").decode())[0].image == "slide_9"


@pytest.mark.parametrize("content, cause", [
    (b"<annotation><object></annotation>", "not well-formed XML"),
    (b"<annotations><filename>a.png</filename></annotations>", "root element is <annotations>"),
    (voc("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox></object>"),
     "<object> number 1 <bndbox> has no <ymax>"),
    (voc(TWO_VOC_OBJECTS + "<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>two</ymax>"
         "</bndbox></object>"), "<object> number 4 <bndbox> <ymax> is 'two', expected a number"),
    (voc("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax></ymax></bndbox></object>"),
     "<object> number 1 <bndbox> <ymax> is empty"),
    (voc("<object><bndbox><xmin>5</xmin><ymin>1</ymin><xmax>4</xmax><ymax>2</ymax></bndbox></object>"),
     "<object> number 1 <bndbox> has <xmax> 4 < <xmin> 5"),
    (voc("<object><bndbox><xmin>1</xmin><ymin>9</ymin><xmax>4</xmax><ymax>2</ymax></bndbox></object>"),
     "<ymax> 2 < <ymin> 9"),
    (voc("<object><name>mitosis</name></object>"), "<object> number 1 has neither <bndbox> nor <centroid>"),
    (voc("<object><centroid><x>1</x></centroid></object>"), "<object> number 1 <centroid> has no <y>"),
])
def test_voc_errors(content, cause):
    with pytest.raises(BoxFileError) as caught:
        read_boxes("labels/bad_1.xml", content)
    assert "labels/bad_1.xml" in str(caught.value)
    assert cause in str(caught.value)


def test_voc_parse_error_names_line_and_column():
    with pytest.raises(BoxFileError, match=r"bad\.xml: not well-formed XML .*line 3, column"):
        read_boxes("bad.xml", b"<annotation>\n<object>\n</annotation>\n")


COCO = b"""\xef\xbb\xbf{
  "images": [
    {"id": 1, "file_name": "train/part_a/img_01.png", "width": 100, "height": 80},
    {"id": 2, "file_name": "train\\\\part_b\\\\img_02.jpg"},
    {"id": "x3", "file_name": "img_03.png"}
  ],
  "annotations": [
    {"id": 10, "image_id": 1, "bbox": [10, 20, 5.5, 6], "category_id": 1},
    {"id": 11, "image_id": 1, "bbox": [0, 0, 1, 1], "centroid": [0.5, 0.5], "category_id": 1},
    {"id": 12, "image_id": 2, "centroid": [40.25, 30]}
  ],
  "categories": [{"id": 1, "name": "mitosis"}]
}"""


def test_coco_several_images_nested_names_and_image_without_annotations():
    assert read_boxes("ann/coco.json", COCO) == [
        FileBox("img_01", (10.0, 20.0, 5.5, 6.0), None, source="ann/coco.json"),
        FileBox("img_01", (0.0, 0.0, 1.0, 1.0), (0.5, 0.5), source="ann/coco.json"),
        FileBox("img_02", None, (40.25, 30.0), source="ann/coco.json"),
    ]
    assert coco_image_keys("ann/coco.json", COCO) == ["img_01", "img_02", "img_03"]


@pytest.mark.parametrize("content, cause", [
    (b'{"images": [], "annotations": [}', "invalid JSON at line 1, column 32"),
    (b'[1, 2]', '"images" is missing; COCO JSON is an object'),
    (b'{"annotations": []}', '"images" is missing'),
    (b'{"images": {}, "annotations": []}', '"images" is not a list'),
    (b'{"images": []}', '"annotations" is missing'),
    (b'{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 2, "bbox": [1, 1, 1, 1]}]}',
     'annotations[0] "image_id" 2 is not the id of any entry in "images"'),
    (b'{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "bbox": [1, 1, 1]}]}',
     'annotations[0] "bbox" is [1, 1, 1], expected a list of 4 numbers'),
    (b'{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "bbox": [1, "1", 1, 1]}]}',
     'annotations[0] "bbox" is [1, "1", 1, 1], expected a list of 4 numbers'),
    (b'{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1}]}',
     'annotations[0] "bbox" is missing'),
    (b'{"images": [{"id": 1, "file_name": "a.png"}], "annotations": '
     b'[{"image_id": 1, "bbox": [1, 1, 1, 1]}, {"image_id": 1, "bbox": [1, 1, -2, 1]}]}',
     'annotations[1] "bbox" [1.0, 1.0, -2.0, 1.0] has a negative width or height'),
    (b'{"images": [{"id": [1], "file_name": "a.png"}], "annotations": []}', 'images[0] needs an "id" (number or string) and a "file_name" string'),
    (b'{"images": [{"id": 1, "file_name": "a/x.png"}, {"id": 2, "file_name": "b/x.png"}], "annotations": []}',
     "images[1] \"file_name\" 'b/x.png' has the same stem 'x'"),
])
def test_coco_errors(content, cause):
    with pytest.raises(BoxFileError) as caught:
        read_boxes("ann/train.json", content)
    assert "ann/train.json" in str(caught.value)
    assert cause in str(caught.value)


def test_csv_corners_with_folders_extensions_and_centroid():
    content = (b"Image Name,XMin,ymin,xmax,ymax,CX,cy\n"
               b"slides/img_01.png,10,20,15.5,26,12,23\n"
               b"\n"
               b"img_01.png,0,0,1,1,,\n"
               b"img_02,3,4,3,4,3,4\n")
    assert read_boxes("boxes.csv", content) == [
        FileBox("img_01", (10.0, 20.0, 5.5, 6.0), (12.0, 23.0), source="boxes.csv"),
        FileBox("img_01", (0.0, 0.0, 1.0, 1.0), None, source="boxes.csv"),
        FileBox("img_02", (3.0, 4.0, 0.0, 0.0), (3.0, 4.0), source="boxes.csv"),
    ]


def test_csv_xywh_and_synonyms():
    content = "file_name\tx\ty\twidth\theight\nimg_01.tif\t1\t2\t3\t4\nimg_02.tif\t5\t6\t7\t8\n"
    assert read_csv("b.csv", content) == [
        FileBox("img_01", (1.0, 2.0, 3.0, 4.0), None, source="b.csv"),
        FileBox("img_02", (5.0, 6.0, 7.0, 8.0), None, source="b.csv"),
    ]
    content = "img,bbox-x,bbox y,BBOX_W,bbox_h,center_x,center_y\na,1,2,3,4,2.5,4\n"
    assert read_csv("b.csv", content) == [FileBox("a", (1.0, 2.0, 3.0, 4.0), (2.5, 4.0), source="b.csv")]
    content = "image,x1,y1,x2,y2\na,1,2,4,6\n"
    assert read_csv("b.csv", content) == [FileBox("a", (1.0, 2.0, 3.0, 4.0), None, source="b.csv")]


def test_csv_centroid_only_and_plain_x_y_as_centroid():
    assert read_csv("c.csv", "name,centroid_x,centroid_y\nimg_01,10.5,3\nimg_01,1,2\n") == [
        FileBox("img_01", None, (10.5, 3.0), source="c.csv"),
        FileBox("img_01", None, (1.0, 2.0), source="c.csv"),
    ]
    assert read_csv("c.csv", "image_file,x,y\nimg_01.png,7,8\n") == [
        FileBox("img_01", None, (7.0, 8.0), source="c.csv")]


def test_csv_semicolon_bom_crlf():
    content = b"\xef\xbb\xbfImage;x_center;y_center\r\nimg_01.png;4,5;6\r\n\r\nimg_02.png;1;2\r\n"
    with pytest.raises(BoxFileError, match=r"semi\.csv: line 2, column 'x_center' is '4,5', expected a number"):
        read_boxes("semi.csv", content)
    content = b"\xef\xbb\xbfImage;x_center;y_center\r\nimg_01.png;4.5;6\r\n\r\nimg_02.png;1;2\r\n"
    assert read_boxes("semi.csv", content) == [
        FileBox("img_01", None, (4.5, 6.0), source="semi.csv"),
        FileBox("img_02", None, (1.0, 2.0), source="semi.csv"),
    ]


def test_csv_image_names_keep_a_numeric_tail_and_drop_an_extension():
    content = "image,cx,cy\nA01.02,1,2\nA01.02.png,1,2\nC:\\scans\\v1.5\\B7.tiff,1,2\n"
    assert [box.image for box in read_csv("n.csv", content)] == ["A01.02", "A01.02", "B7"]


def test_csv_latin1_fallback():
    content = "image,cx,cy\nlésion_1.png,1,2\n".encode("latin-1")
    assert read_boxes("l.csv", content)[0].image == "lésion_1"


@pytest.mark.parametrize("content, cause", [
    (b"image,xmin,ymin,xmax,ymax\na,1,2,3,4\n,1,2,3,4\n", "line 3, column 'image': the image name is empty"),
    (b"image,xmin,ymin,xmax,ymax\n\na,1,2,3,4\nb,1,2,x,4\n", "line 4, column 'xmax' is 'x', expected a number"),
    (b"image,xmin,ymin,xmax,ymax\na,1,2,3\n", "line 2, column 'ymax' is empty"),
    (b"image,xmin,ymin,xmax,ymax\na,5,2,3,4\n", "line 2, column 'xmax': 3 is less than xmin 5"),
    (b"image,x,y,w,h\na,5,2,-3,4\n", "line 2, column 'w': negative size -3"),
    (b"image,xmin,ymin,xmax,ymax\na,,,,\n", "line 2: the row gives neither a box nor a centroid"),
    (b"image,cx,cy,w,h\na,1,2,3,4\n", "line 1: header has box column(s) w, h but not x, y"),
    (b"image,x-min,ymin,xmax,ymax\na,1,2,3,4\n", "header has box column(s) ymin, xmax, ymax but not xmin"),
    (b"picture,left,top\na,1,2\n", "line 1: header not recognised: ['picture', 'left', 'top']; looked for"),
    (b"image;score\na;1\n", "header not recognised: ['image', 'score']"),
    (b"\n\n", "the file is empty; a header row is required"),
])
def test_csv_errors(content, cause):
    with pytest.raises(BoxFileError) as caught:
        read_boxes("gt/boxes.csv", content)
    assert "gt/boxes.csv" in str(caught.value)
    assert cause in str(caught.value)


def test_csv_unrecognised_header_lists_names_looked_for():
    with pytest.raises(BoxFileError) as caught:
        read_csv("h.csv", "picture,left,top\n")
    for name in ("file_name", "xmin", "x1", "bbox_w", "width", "centroid_x", "x_center"):
        assert name in str(caught.value)


def test_yolo_normalized_and_scaled():
    content = b"0 0.5 0.25 0.2 0.1\r\n\r\n1 0.05 0.95 0.1 0.1\r\n0 1.0000001 0 0 0\r\n"
    boxes = read_boxes("labels/img_04.txt", content)
    assert [box.image for box in boxes] == ["img_04"] * 3
    assert all(box.normalized and box.source == "labels/img_04.txt" for box in boxes)
    assert boxes[0].bbox == pytest.approx((0.4, 0.2, 0.2, 0.1))
    assert boxes[0].centroid == (0.5, 0.25)
    assert boxes[1].bbox == pytest.approx((0.0, 0.9, 0.1, 0.1))
    scaled = boxes[0].scaled(200, 400)
    assert not scaled.normalized and scaled.image == "img_04"
    assert scaled.bbox == pytest.approx((80.0, 80.0, 40.0, 40.0))
    assert scaled.centroid == pytest.approx((100.0, 100.0))
    absolute = FileBox("a", (1.0, 2.0, 3.0, 4.0), None)
    assert absolute.scaled(10, 10) is absolute
    assert FileBox("a", None, (0.5, 0.5), normalized=True).scaled(10, 20) == FileBox("a", None, (5.0, 10.0))
    with pytest.raises(ValueError, match="positive"):
        boxes[0].scaled(0, 10)


def test_yolo_empty_file_means_no_objects():
    assert read_boxes("img_05.txt", b"") == []
    assert read_yolo("img_05.txt", "\n  \n") == []


@pytest.mark.parametrize("content, cause", [
    (b"0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n", "line 2: 4 fields, YOLO expects 5 (class cx cy w h)"),
    (b"0 0.5 0.5 0.1 0.1 0.9\n", "line 1: 6 fields"),
    (b"mitosis 0.5 0.5 0.1 0.1\n", "line 1, field 1 (class) is 'mitosis', expected a number"),
    (b"0 0.5 0.5 0.1 nan\n", "line 1, field 5 (h) is 'nan', expected a number"),
    (b"\n0 120 80 16 16\n", "line 2, field 2 (cx) is 120, outside [0, 1]; the file looks like absolute pixels"),
    (b"0 0.5 0.5 -0.1 0.1\n", "line 1, field 4 (w) is -0.1, outside [0, 1]"),
])
def test_yolo_errors(content, cause):
    with pytest.raises(BoxFileError) as caught:
        read_boxes("labels/img_06.txt", content)
    assert "labels/img_06.txt" in str(caught.value)
    assert cause in str(caught.value)


def test_box_format_and_dispatch():
    assert BOX_FORMATS == {".xml": "VOC XML", ".json": "COCO JSON", ".csv": "CSV", ".txt": "YOLO txt"}
    assert box_format("a/B.XML") == "VOC XML"
    assert box_format("x.Json") == "COCO JSON"
    assert box_format("x.csv") == "CSV"
    assert box_format("x.txt") == "YOLO txt"
    assert box_format("x.png") is None
    assert box_format("README") is None
    with pytest.raises(BoxFileError, match=r"img\.png: not a box file"):
        read_boxes("img.png", b"")
    assert read_coco("c.json", '{"images": [], "annotations": []}') == []
