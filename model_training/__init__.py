"""Training package: reproduces Wang et al., CVPR 2020, and produces the app's checkpoint.

Modules: ``config`` (TrainConfig + YAML presets), ``dataset`` (ForenSynths folders,
transforms, resumable sampling), ``augment`` (the paper's blur/JPEG), ``models`` (the app's
ResNets, EfficientNet-B0, ImageNet initialisation), ``train`` (train_one_epoch, evaluate,
plateau schedule, fit), ``metrics``, ``evaluate`` (per-set tables, baselines, robustness
sweeps, curves), ``export`` (app checkpoint, calibration, model card). Command line:
``python -m model_training {train,evaluate,export}``. The app never imports this package.
"""
