# Active-learning experiment: ROUNDS rounds x SEEDS x METHODS, each round an `alcli` shell pipeline.
#
#   make -f samples/experiment.mk -j2 DATA=samples/mnist5k.h5 NAME=mnist \
#        METHODS="random kcenter entropy" SEEDS="0 1 2 3 4" ROUNDS=5 INITIAL=100 BUDGET=100 TEST=1000
#
# Files per round: runs/<NAME>/<method>/seed<k>/round<r>/{labeled,ckpt,report}.h5, plus
# runs/<NAME>/curve.{csv,png}. Every alcli output is written to a temporary file and renamed, so make
# sees either a whole artifact or none: a rerun skips finished rounds, and Ctrl-C loses at most the
# rounds in flight. Seed k fixes the test split, the initial pool (shared by every method, so curves are
# paired) and the training seed; the test split (TEST rows, seed TEST_SEED) is the same for every run.
# `-j N` runs independent seeds and methods in parallel.
#
# Weakly supervised (the paper's Figure 3): SEMI=fixmatch trains every model of the run, the shared
# initial one included, with `--semi-supervised fixmatch` on the rows that are neither labelled nor in
# the test split (then EPOCHS counts passes over those unlabelled rows); use its own NAME.
# Method `ceal` (Wang et al. 2016): least-confidence picks, and each round's training adds the rows whose
# entropy under the previous round's model is below δ_r = CEAL_DELTA − r·CEAL_DR (floored at 0) with
# their predicted class. Its embeddings are kept as round<r>/embeddings.h5.
# Pretrained: BACKBONE=resnet18 WEIGHTS=resnet18.pth fine-tunes that torchvision model from the local weights
# file in every round instead of training ARCH from scratch (add TRAIN_ARGS="--freeze-backbone --image-size 64"
# for a linear probe on small images); embed, select and evaluate use its checkpoints as they are.

ALCLI    ?= alcli
DATA     ?= samples/mnist5k.h5
NAME     ?= $(basename $(notdir $(DATA)))
METHODS  ?= random kcenter
SEEDS    ?= 0 1
ROUNDS   ?= 2
INITIAL  ?= 100
BUDGET   ?= 100
TEST     ?= 1000
TEST_SEED ?= 12345
ARCH     ?= small
BACKBONE ?=
WEIGHTS  ?=
EPOCHS   ?= 15
TRAIN_ARGS  ?=
EMBED_ARGS  ?=
SELECT_ARGS ?=
SEMI     ?=
SEMI_ARGS ?=
CEAL_DELTA ?= 0.05
CEAL_DR  ?= 0.0033
OUT      ?= runs/$(NAME)

# one thread per job: run the parallelism through make -j, not through BLAS/OpenMP threads
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

# every training: the test split is never trained on, not even as unlabelled or pseudo-labelled rows
TRAIN := $(ALCLI) -q train $(DATA) --arch $(ARCH) --epochs $(EPOCHS) --exclude $(OUT)/test.h5 \
  $(if $(BACKBONE),--backbone $(BACKBONE) --weights $(WEIGHTS)) \
  $(if $(SEMI),--semi-supervised $(SEMI) $(SEMI_ARGS)) $(TRAIN_ARGS)
select_method = $(if $(filter ceal,$(1)),least-confidence,$(1))
ceal_delta = $(shell awk 'BEGIN { d = $(CEAL_DELTA) - $(1) * $(CEAL_DR); print (d > 0 ? d : 0) }')

.DELETE_ON_ERROR:
.PRECIOUS: $(OUT)/seed%/init.h5 $(OUT)/seed%/init-ckpt.h5 $(OUT)/seed%/init-report.h5
.PHONY: all reports curve

rounds  := $(shell seq 0 $(ROUNDS))
reports := $(foreach m,$(METHODS),$(foreach s,$(SEEDS),$(foreach r,$(rounds),$(OUT)/$(m)/seed$(s)/round$(r)/report.h5)))

all: curve
reports: $(reports)
curve: $(OUT)/curve.csv

$(OUT)/curve.csv: $(reports)
	$(ALCLI) curve $^ --csv $@ --plot $(OUT)/curve.png --title "$(NAME): $(ARCH), +$(BUDGET)/round, seeds $(SEEDS)"

# the test split, then per seed the initial pool and its model, shared by every method
$(OUT)/test.h5:
	@mkdir -p $(@D)
	$(ALCLI) -q split $(DATA) --size $(TEST) --seed $(TEST_SEED) -o $@

$(OUT)/seed%/init.h5: $(OUT)/test.h5
	@mkdir -p $(@D)
	$(ALCLI) -q split $(DATA) --size $(INITIAL) --exclude $< --seed $* -o $@

$(OUT)/seed%/init-ckpt.h5: $(OUT)/seed%/init.h5
	$(TRAIN) --labeled $< --seed $* -o $@

$(OUT)/seed%/init-report.h5: $(OUT)/seed%/init-ckpt.h5
	$(ALCLI) -q evaluate $< $(DATA) --indices $(OUT)/test.h5 -o $@

# round<r> of method m, seed s (generated rules: make has one % per pattern)
define ROUND0
$(OUT)/$(1)/seed$(2)/round0/labeled.h5: $(OUT)/seed$(2)/init.h5
	@mkdir -p $$(@D)
	cp $$< $$@
$(OUT)/$(1)/seed$(2)/round0/ckpt.h5: $(OUT)/seed$(2)/init-ckpt.h5 $(OUT)/$(1)/seed$(2)/round0/labeled.h5
	cp $$< $$@
$(OUT)/$(1)/seed$(2)/round0/report.h5: $(OUT)/seed$(2)/init-report.h5 $(OUT)/$(1)/seed$(2)/round0/ckpt.h5
	cp $$< $$@
endef

define ROUND
$(OUT)/$(1)/seed$(2)/round$(3)/labeled.h5: $(OUT)/$(1)/seed$(2)/round$(4)/ckpt.h5 $(OUT)/$(1)/seed$(2)/round$(4)/labeled.h5
	@mkdir -p $$(@D)
	$(ALCLI) -q embed $(DATA) --checkpoint $$< --exclude $(OUT)/test.h5 --seed $(2) $(EMBED_ARGS) \
	  $(if $(filter ceal,$(1)),-o $$(@D)/embeddings.h5 && $(ALCLI) select $$(@D)/embeddings.h5,- | $(ALCLI) select -) \
	      --labeled $$(word 2,$$^) --budget $(BUDGET) --method $(call select_method,$(1)) \
	      --seed $(2) --exclude $(OUT)/test.h5 --radius $(SELECT_ARGS) -o $$@ --json > $$(@D)/select.json
$(OUT)/$(1)/seed$(2)/round$(3)/ckpt.h5: $(OUT)/$(1)/seed$(2)/round$(3)/labeled.h5
	$(TRAIN) --labeled $$< --seed $(2) \
	  $(if $(filter ceal,$(1)),--pseudo-labels $$(@D)/embeddings.h5 --pseudo-threshold $(call ceal_delta,$(3))) -o $$@
$(OUT)/$(1)/seed$(2)/round$(3)/report.h5: $(OUT)/$(1)/seed$(2)/round$(3)/ckpt.h5
	$(ALCLI) -q evaluate $$< $(DATA) --indices $(OUT)/test.h5 -o $$@
endef

$(foreach m,$(METHODS),$(foreach s,$(SEEDS),$(eval $(call ROUND0,$(m),$(s)))))
$(foreach m,$(METHODS),$(foreach s,$(SEEDS),$(foreach r,$(wordlist 2,$(words $(rounds)),$(rounds)),\
  $(eval $(call ROUND,$(m),$(s),$(r),$(shell expr $(r) - 1))))))
