"""Property models (padded MLP, Kearnes weave graph convolution, tied DAE) on molecular
properties: features, vibrational augmentation, baselines and the training experiment."""
