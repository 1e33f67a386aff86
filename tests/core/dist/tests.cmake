# tests of core/dist (the launcher, collectives) and of distributed training
