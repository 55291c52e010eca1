"""Reference values of the VOC07 SVM protocols that the reports also need (torch-free on purpose).

`LOWSHOT_K_VALUES`: the positives per class of the low-shot protocol (fair_self_supervision_benchmark
tools/svm/train_svm_low_shot.py, run by MMSelfSup's eval_svm_lowshot.sh); `lowshot.Config` defaults
to it and the low-shot table has one column per value.
"""

LOWSHOT_K_VALUES = (1, 2, 4, 8, 16, 32, 64, 96)
