"""ImageNet / iNaturalist2018 / Places205 classification protocols on a ResNet-50.

Protocols: `linear` (the multi-head linear probe on frozen Feature1..5), `avgpool` (the MoCo
AvgPool linear probe, through `linear.fit_probe`), `semisup` (whole-network fine-tuning on the
1 % / 10 % ImageNet subsets). What they share: `data` (splits, class check, loaders, per-epoch
seeding), `transforms` (the reference image pipelines), `state` (resumable state files, the
frozen-backbone guard) and `loop` (the one train-epoch / evaluate loop, deterministic mode).
The process group, lr schedule and norm-parameter rule come from `dcbench.distributed` and
`dcbench.optim`.
"""
