"""How much of a hostile file any one provenance reader will look at."""

MAX_TEXT_CHUNK_BYTES = 1 << 20  # decompressed size of one PNG text chunk that is parsed
MAX_TEXT_TOTAL_BYTES = 8 << 20  # all text chunks of one file together
MAX_TEXT_CHUNKS = 256  # PNG text chunks (or JPEG COM segments) looked at
MAX_XMP_BYTES = 4 << 20  # one XMP packet (an extended XMP packet once merged, too)
MAX_IIM_BYTES = 1 << 20  # the IPTC-IIM records of one file
MAX_BOXES = 4096  # ISOBMFF / JPEG XL boxes walked
STORED_TEXT_CHARS = 8192  # text kept on the record per entry (the full length is recorded)
MAX_JSON_DEPTH = 64
# Longest value of any one field in the one-line summary, and of the summary itself: a
# 1,000-character JSON blob in an EXIF Make must not become the analyst's headline.
SUMMARY_FIELD_CHARS = 60
SUMMARY_CHARS = 400
EXIF_TEXT_CHARS = 512  # an EXIF string kept on the record
