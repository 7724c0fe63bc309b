# the ladder with the N = 256 setting next to the -focus model's defaults and the tuned LETKF on the
# same cases: python3 docs/results/scale-study/ladder-focus-tl1.5/table.py (from the repository root)
import json
def cov(d): return max(abs(o-l) for o,l in zip(d['coverage']['observed'],d['coverage']['levels']))
R='docs/results/scale-study/'
for n in [8,16,32,64,128]:
    new=json.load(open(R+'ladder-focus-tl1.5/full-%d.json'%n))
    old=json.load(open(R+'ladder-focus/full-%d.json'%n))
    le=json.load(open(R+'ladder-pc64/full/%d/letkf.json'%n))
    assert new['cases']==old['cases']==le['cases'] and new['seed']==old['seed']==le['seed']
    print('| %d | %d | %.4f (%.4f) | %.4f | %.3f (%.3f) | %.3f | %.2f (%.2f) | %.4f | %.4f |'%(n,new['cases'],new['rmse'],old['rmse'],le['rmse'],cov(new),cov(old),cov(le),new['spread']/new['rmse'],old['spread']/old['rmse'],new['crps'],le['crps']))
