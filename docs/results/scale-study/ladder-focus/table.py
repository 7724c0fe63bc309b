import json,sys
def cov(d): return max(abs(o-l) for o,l in zip(d['coverage']['observed'],d['coverage']['levels']))
for n in [8,16,32,64,128]:
    D='docs/results/scale-study/ladder-pc64/full/%d/'%n
    try: new=json.load(open('docs/results/scale-study/ladder-focus/full-%d.json'%n))
    except OSError: continue
    old=json.load(open(D+'l96-sakov-n32-k3-local-score.json')); le=json.load(open(D+'letkf.json'))
    assert new['cases']==old['cases']==le['cases'] and new['seed']==old['seed']==le['seed']
    print('| %d | %d | %.3f | %.3f | %.3f | %.3f (%.3f) | %.3f | %.3f | %.1f |'%(n,new['cases'],old['rmse'],new['rmse'],le['rmse'],cov(new),cov(old),new['crps'],le['crps'],new['seconds_per_request']))
