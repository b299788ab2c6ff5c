"""Learning on images: models, data, training recipes, FixMatch/CEAL, embedding and evaluation.

Holds: `models` (architectures, checkpoint tensors), `data` (image batches streamed from a data set's
file, read ahead by DataLoader workers), `recipe` (a training recipe and what every loop starts from),
`training` (supervised training, checkpoints back to models), `semisupervised` (FixMatch, CEAL's
pseudo-labels), `augment`, `embedding` (penultimate-layer features), `evaluation`, `backbones` (pretrained
torchvision models: features before the classifier, fine-tuning) and `weights` (their local weight files).

May import: alcli.selection (entropy for CEAL), alcli.images, alcli.artifacts, alcli.errors,
alcli.console. Never the CLI (alcli.cli, alcli.commands, alcli.options) nor scale/labelling/report.
"""
