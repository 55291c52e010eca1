"""The Feature1..5 tap names (stage outputs of the ResNet-50), torch-free so `reports` imports them.

`dcbench.backbone` defines what each tap is (pooling, size); the evaluators and the tables use these
names for rows and columns.
"""

LAYERS = ("feature1", "feature2", "feature3", "feature4", "feature5")
