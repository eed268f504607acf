from forensics_app.core.scan import scan_paths


def test_scan_folder_scores_every_image(tiny_detector, image_folder):
    results = scan_paths([image_folder], tiny_detector)
    assert len(results) == 8
    assert all(r.ok and 0.0 <= r.prob_fake <= 1.0 for r in results)
    assert [r.index for r in results] == list(range(8))
