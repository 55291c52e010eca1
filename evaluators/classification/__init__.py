"""ImageNet / iNaturalist2018 / Places205 classification protocols on a ResNet-50.

`linear`: the multi-head linear probe on frozen Feature1..5; `avgpool`: the MoCo AvgPool linear
probe; `semisup`: whole-network fine-tuning on the 1 % / 10 % ImageNet subsets. `train_utils`
holds what they share (distributed set-up, loaders, transforms, schedules, state files).
"""
